"""The budget sweep's report: aggregate table, headline comparisons, per-query matrices and the
plot. Pure functions of the sweep's rows and per-query NDCG@10; `smar.reranker.sweep` runs the
sweep and writes what these return.

Two kinds of interval:

* `seed_ci_low/high`: a Student-t interval over the seeds' means (training variance only);
* `ci_low/high`: a bootstrap resampled over test queries AND seeds, paired across methods
  (`smar.reranker.sweep_stats`), which is the one to read: it includes the sampling error of
  the test set. Without per-query matrices it falls back to the t interval.

The merge ceiling (`smar.reranker.ceiling`) is reported as method `merge_ceiling` (budget 0).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from smar.reranker.sweep_stats import BootstrapDraws, compare, summarise
from smar.vocabulary import FUSION_METHODS, SMAR_METHODS, SWEEP_LABEL_SOURCES

CEILING_METHOD = "merge_ceiling"
#: Per label source, per (method, budget): NDCG@10 `[seeds, test queries]`.
Matrices = dict[str, dict[tuple[str, float], NDArray[np.float64]]]


def mean_and_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval over the values (NaN bounds when n < 2)."""
    from scipy import stats

    finite = np.asarray(values, dtype=np.float64)
    finite = finite[~np.isnan(finite)]
    if finite.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(finite.mean())
    if finite.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, finite.size - 1) * finite.std(ddof=1) / math.sqrt(finite.size))
    return mean, mean - half, mean + half


def per_query_matrices(
    per_query: list[dict[str, Any]], seeds: tuple[int, ...], ceilings: dict[str, NDArray[np.float64]]
) -> Matrices:
    """Per label source, per (method, budget): NDCG@10 `[seeds, test queries]` in `seeds` order
    from the records (label_source, method, budget, seed, ndcg [Q]); a fusion (the same every
    seed) is one row; the merge ceiling of `ceilings[source]` is (`CEILING_METHOD`, 0)."""
    grouped: dict[str, dict[tuple[str, float], dict[int, NDArray[np.float64]]]] = {}
    for entry in per_query:
        key = (entry["method"], float(entry["budget"]))
        grouped.setdefault(entry["label_source"], {}).setdefault(key, {})[entry["seed"]] = entry["ndcg"]
    matrices: Matrices = {}
    for source, by_key in grouped.items():
        matrices[source] = {}
        for key, by_seed in by_key.items():
            if key[0] in FUSION_METHODS:
                matrices[source][key] = np.asarray([by_seed[min(by_seed)]], dtype=np.float64)
            else:
                matrices[source][key] = np.stack([by_seed[seed] for seed in seeds if seed in by_seed])
        if source in ceilings:
            matrices[source][(CEILING_METHOD, 0.0)] = np.asarray(ceilings[source], dtype=np.float64)[None, :]
    return matrices


def per_query_frame(matrices: Matrices, query_ids: NDArray[np.object_]) -> pd.DataFrame:
    """Long table (label_source, method, budget, seed_row, query_id, ndcg_at_10)."""
    records = [
        {
            "label_source": source,
            "method": method,
            "budget": budget,
            "seed_row": row,
            "query_id": query,
            "ndcg_at_10": value,
        }
        for source, by_key in matrices.items()
        for (method, budget), matrix in by_key.items()
        for row, values in enumerate(matrix)
        for query, value in zip(query_ids, values, strict=True)
    ]
    return pd.DataFrame.from_records(records)


def aggregate_sweep(
    rows: pd.DataFrame, matrices: Matrices | None = None, draws: BootstrapDraws | None = None
) -> pd.DataFrame:
    """Per (label_source, method, budget): seeds, mean NDCG@10, its 95% t interval over seeds
    (`seed_ci_low/high`) and `ci_low/high`: the bootstrap over test queries and seeds when
    `matrices` and `draws` are given, the t interval otherwise. With matrices holding the merge
    ceiling, one more row per label source: method `merge_ceiling`, budget 0."""
    records = []
    for (source, method, budget), group in rows.groupby(["label_source", "method", "budget"], sort=True):
        mean, low, high = mean_and_interval(group["ndcg_at_10"].to_numpy())
        record = {
            "label_source": source,
            "method": method,
            "budget": budget,
            "seeds": len(group),
            "ndcg_at_10": mean,
            "ci_low": low,
            "ci_high": high,
            "seed_ci_low": low,
            "seed_ci_high": high,
        }
        key = (str(method), float(budget))
        if matrices is not None and draws is not None and key in matrices.get(str(source), {}):
            summary = summarise({key: matrices[str(source)][key]}, draws)[key]
            record.update(ci_low=summary["ci_low"], ci_high=summary["ci_high"])
        records.append(record)
    if matrices is not None and draws is not None:
        for source, by_key in sorted(matrices.items()):
            key = (CEILING_METHOD, 0.0)
            if key in by_key:
                summary = summarise({key: by_key[key]}, draws)[key]
                records.append(
                    {
                        "label_source": source,
                        "method": CEILING_METHOD,
                        "budget": 0.0,
                        "seeds": 0,
                        "ndcg_at_10": summary["ndcg_at_10"],
                        "ci_low": summary["ci_low"],
                        "ci_high": summary["ci_high"],
                        "seed_ci_low": math.nan,
                        "seed_ci_high": math.nan,
                    }
                )
    return pd.DataFrame.from_records(records)


def _per_seed(rows: pd.DataFrame, source: str, method: str, budget: float) -> pd.Series:
    chosen = rows[(rows["label_source"] == source) & (rows["method"] == method) & np.isclose(rows["budget"], budget)]
    return chosen.set_index("seed")["ndcg_at_10"]


#: What every SMAR method is compared with at its budget in the paired bootstrap ((method,
#: None) = at the same budget).
BOOTSTRAP_REFERENCES: tuple[tuple[str, float | None], ...] = (
    ("sft", 1.0),
    ("page_loss_only", None),
    ("lightgbm", None),
    ("gbdt_smar", None),
    *((method, None) for method in SMAR_METHODS),
    (CEILING_METHOD, 0.0),
)


def headline_comparisons(
    rows: pd.DataFrame,
    budgets: tuple[float, ...],
    *,
    matrices: Matrices | None = None,
    draws: BootstrapDraws | None = None,
) -> dict[str, Any]:
    """The issue's questions, per label source: SMAR@p / SFT@100% (paired by seed; does the
    mean ratio reach 0.97?), and SMAR - page_loss_only at each budget below 1 (paired by seed).
    With `matrices` and `draws`, also `paired_bootstrap_over_queries_and_seeds`: every SMAR
    method at every budget against `BOOTSTRAP_REFERENCES` (`sweep_stats.compare`)."""
    comparisons: dict[str, Any] = {}
    for source in sorted(rows["label_source"].unique()):
        sft = _per_seed(rows, source, "sft", 1.0)
        entry: dict[str, Any] = {}
        for method in SMAR_METHODS:
            for budget in budgets:
                if budget >= 1.0:
                    continue
                smar = _per_seed(rows, source, method, budget)
                if not sft.empty and not smar.empty:
                    paired = (smar / sft).dropna()
                    mean, low, high = mean_and_interval(paired.to_numpy())
                    entry[f"{method}@{budget:g}_over_sft"] = {
                        "ratio": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "reaches_0.97": bool(mean >= 0.97),
                    }
                baseline = _per_seed(rows, source, "page_loss_only", budget)
                if not baseline.empty and not smar.empty:
                    difference = (smar - baseline).dropna()
                    mean, low, high = mean_and_interval(difference.to_numpy())
                    entry[f"{method}@{budget:g}_minus_page_loss_only"] = {
                        "difference": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "smar_better_in_seeds": int((difference > 0).sum()),
                        "seeds": int(difference.size),
                    }
        if matrices is not None and draws is not None and source in matrices:
            entry["paired_bootstrap_over_queries_and_seeds"] = _bootstrap_comparisons(matrices[source], budgets, draws)
        comparisons[source] = entry
    return comparisons


def _bootstrap_comparisons(
    by_key: dict[tuple[str, float], NDArray[np.float64]], budgets: tuple[float, ...], draws: BootstrapDraws
) -> dict[str, Any]:
    bootstrap: dict[str, Any] = {}
    for method in SMAR_METHODS:
        for budget in budgets:
            key = (method, float(budget))
            if key not in by_key:
                continue
            for name, reference_budget in BOOTSTRAP_REFERENCES:
                reference = (name, float(budget) if reference_budget is None else reference_budget)
                if reference in by_key and reference != key:
                    label = f"{method}@{budget:g}_vs_{reference[0]}@{reference[1]:g}"
                    bootstrap[label] = compare(by_key[key], by_key[reference], draws)
    return bootstrap


# ------------------------------------------------------------------------------------ plot


METHOD_STYLE: dict[str, dict[str, Any]] = {
    "smar_merge": {"color": "tab:pink", "marker": "*", "label": "smar_merge (default)"},
    "smar_pairwise": {"color": "tab:red", "marker": "o", "label": "SMAR (pairwise)"},
    "smar_listwise": {"color": "tab:orange", "marker": "s", "label": "SMAR (listwise)"},
    "page_loss_only": {"color": "tab:blue", "marker": "^", "label": "page loss only"},
    "lightgbm": {"color": "tab:green", "marker": "D", "label": "LightGBM lambdarank"},
    "gbdt_smar": {"color": "tab:olive", "marker": "v", "label": "LightGBM, SMAR objective"},
    "sft": {"color": "black", "label": "SFT (100% labels)"},
    CEILING_METHOD: {"color": "tab:cyan", "label": "merge ceiling (DP, keeps single-modal orders)"},
    "fusion_raw": {"color": "tab:gray", "label": "fusion: raw score"},
    "fusion_zscore": {"color": "tab:purple", "label": "fusion: z-score"},
    "fusion_interleave": {"color": "tab:brown", "label": "fusion: interleave"},
}
#: Methods drawn as horizontal reference lines (one value each), and their line style.
REFERENCE_LINES: dict[str, str] = {
    "sft": "-",
    CEILING_METHOD: "-.",
    **dict.fromkeys(FUSION_METHODS, "--"),
}


def plot_sweep(aggregate: pd.DataFrame, path: Path, *, title: str) -> Path:
    """PNG of NDCG@10 against the budget: one panel per label source; lines with 95% interval
    bands for budgeted methods, horizontal lines for SFT (solid, with its band and a dotted
    0.97 x SFT line), the merge ceiling (dash-dotted) and the label-free fusions (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = [source for source in SWEEP_LABEL_SOURCES if source in set(aggregate["label_source"])]
    figure, axes = plt.subplots(1, len(sources), figsize=(6.5 * len(sources), 5.2), squeeze=False, sharey=True)
    for axis, source in zip(axes[0], sources, strict=True):
        data = aggregate[aggregate["label_source"] == source]
        budgets = sorted(data.loc[~data["method"].isin(tuple(REFERENCE_LINES)), "budget"].unique())
        low_x, high_x = (min(budgets), max(budgets)) if budgets else (0.1, 1.0)
        for method, style in METHOD_STYLE.items():
            rows = data[data["method"] == method].sort_values("budget")
            if rows.empty:
                continue
            if method in REFERENCE_LINES:
                value = float(rows["ndcg_at_10"].iloc[0])
                axis.axhline(
                    value, color=style["color"], linestyle=REFERENCE_LINES[method], linewidth=1.2, label=style["label"]
                )
                if method == "sft":
                    if not math.isnan(float(rows["ci_low"].iloc[0])):
                        axis.axhspan(
                            float(rows["ci_low"].iloc[0]), float(rows["ci_high"].iloc[0]), color="black", alpha=0.08
                        )
                    axis.axhline(0.97 * value, color="black", linestyle=":", linewidth=1.0, label="0.97 x SFT")
                continue
            x = rows["budget"].to_numpy()
            axis.plot(x, rows["ndcg_at_10"], marker=style["marker"], color=style["color"], label=style["label"])
            if rows["ci_low"].notna().any():
                axis.fill_between(x, rows["ci_low"], rows["ci_high"], color=style["color"], alpha=0.15)
        axis.set_xscale("log")
        axis.set_xticks(budgets or [low_x, high_x])
        axis.set_xticklabels([f"{100 * b:g}%" for b in (budgets or [low_x, high_x])])
        axis.set_xlabel("annotation budget (share of each modality's candidates with a page label)")
        axis.set_title(f"NDCG@10 on test queries vs {'hidden truth (oracle)' if source == 'oracle' else 'page labels'}")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("NDCG@10 (mean; 95% CI over test queries x seeds)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.14, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path

"""`budget-sweep`: NDCG@10 against the annotation budget, across seeds, for SMAR and baselines.

For each seed, each budget p in (0.1, 0.2, 0.3, 1.0) and each method:

* smar_pairwise, smar_listwise, lightgbm: trained on the page labels a budget-p annotation
  would give (per page and modality, `select_positions(strategy, n, p)` of the single-modal
  ranked list), early-stopped on page_valid queries labelled at the same budget;
* page_loss_only: the same without the intra-modal term (budgets below 1);
* sft: page loss only, 100% of the labels (one point, drawn as a reference line);
* fusions: no page label at all (drawn as reference lines).

Labels: the budgets are emulated from one full annotation of the page_train, page_valid and test
queries. On synthetic data, `simulate_labels=True` writes that annotation into
`silver.page_labels` from `truth.relevance` (annotator "simulated-oracle", noise-free: an
annotator who grades exactly the hidden truth), so "page_labels" and "oracle" test metrics agree
unless real or noisy labels are used.

Metric: NDCG@10 on test queries (one page per query, linear gain, trec_eval ties), against the
hidden truth ("oracle") and against the test page labels ("page_labels"). Seeds vary the
model's initialisation, dropout and page order (and the draw of the "random" strategy); the test
queries are fixed, so the CIs (t interval over seeds) show training variance, not the sampling
error of the test queries.

Output: `gold.budget_sweep` (one slice per sweep_id), one `gold.reranker_runs` row per run, and
under `<settings.reports>/sweep/`: `<sweep_id>.png` (the plot), `<sweep_id>_summary.csv`.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, model_validator
from pyspark.sql import SparkSession
from tqdm.auto import tqdm

from smar.config import FrozenConfig
from smar.lake import Lakehouse
from smar.reranker.baselines import LightGBMConfig
from smar.reranker.inputs import pin_versions, read_pinned
from smar.reranker.registry import register_runs
from smar.reranker.runs import PAGE_STORE_SPLITS, fit_and_evaluate, prepare_pages
from smar.reranker.text_cache import DEFAULT_ENCODER_NAME, TextEncodeFunction
from smar.reranker.training import TrainingConfig
from smar.splits import query_split
from smar.storage import files
from smar.storage.uris import join
from smar.vocabulary import FUSION_METHODS, RERANKER_METHODS, SMAR_METHODS, SWEEP_LABEL_SOURCES, content_id, day_range

log = logging.getLogger(__name__)

SWEEP_TABLE = "gold.budget_sweep"
DEFAULT_BUDGETS: tuple[float, ...] = (0.1, 0.2, 0.3, 1.0)
SIMULATED_ANNOTATOR = "simulated-oracle"
LABEL_SOURCES = SWEEP_LABEL_SOURCES


class SweepConfig(FrozenConfig):
    """What to sweep. `training` / `lightgbm` are the base hyper-parameters (seed overridden)."""

    ds_start: str
    ds_end: str
    seeds: tuple[int, ...] = (0, 1, 2)
    budgets: tuple[float, ...] = DEFAULT_BUDGETS
    methods: tuple[str, ...] = RERANKER_METHODS
    strategy: str = "top"
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    lightgbm: LightGBMConfig = Field(default_factory=LightGBMConfig)
    simulate_labels: bool = True
    annotator: str = SIMULATED_ANNOTATOR
    sweep_id: str | None = None
    progress: bool = True
    encoder_name: str = DEFAULT_ENCODER_NAME

    @model_validator(mode="after")
    def _check(self) -> SweepConfig:
        unknown = set(self.methods) - set(RERANKER_METHODS)
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}; expected some of {RERANKER_METHODS}")
        if not self.seeds or not self.budgets:
            raise ValueError("a sweep needs at least one seed and one budget")
        if any(not 0.0 < budget <= 1.0 for budget in self.budgets):
            raise ValueError(f"budgets must lie in (0, 1], got {self.budgets}")
        return self

    def definition(self) -> dict[str, Any]:
        """Everything that defines the sweep's results (for its id)."""
        values = self.model_dump()
        values.pop("progress")
        values.pop("sweep_id")
        return values


@dataclass
class SweepSummary:
    """The sweep's rows, their aggregate (mean and 95% CI over seeds), the headline comparisons
    and where the plot went."""

    sweep_id: str
    rows: pd.DataFrame
    aggregate: pd.DataFrame
    comparisons: dict[str, Any]
    plot_path: str  # URIs under <reports>/sweep/
    summary_path: str
    input_versions: dict[str, int]


# ------------------------------------------------------------------------- simulated labels


def write_simulated_page_labels(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds_values: list[str],
    query_splits: tuple[str, ...] = PAGE_STORE_SPLITS,
    annotator: str = SIMULATED_ANNOTATOR,
) -> int:
    """Grade every candidate of every query of `query_splits` on ds_values (each query once, on
    its earliest day) with its hidden truth grade, and MERGE these labels into
    `silver.page_labels` (annotator `annotator`, strategy "full"). Re-running changes nothing.
    Returns the number of label rows; candidates without a truth grade are counted in the log."""
    versions = pin_versions(lake, ("silver.single_modal_scores", "truth.relevance"))
    candidates = (
        read_pinned(
            lake,
            "silver.single_modal_scores",
            versions["silver.single_modal_scores"],
            columns=["ds", "query_id", "item_id", "modality"],
            ds_values=ds_values,
        )
        .to_pandas()
        .drop_duplicates(["ds", "query_id", "item_id"])
    )
    keep = {query for query in candidates["query_id"].unique() if query_split(query) in query_splits}
    candidates = candidates[candidates["query_id"].isin(keep)]
    first_day = candidates.groupby("query_id")["ds"].transform("min")
    candidates = candidates[candidates["ds"] == first_day]
    truth = read_pinned(
        lake,
        "truth.relevance",
        versions["truth.relevance"],
        columns=["ds", "query_id", "item_id", "grade"],
        ds_values=ds_values,
    ).to_pandas()
    labels = candidates.merge(truth, on=["ds", "query_id", "item_id"], how="left")
    missing = labels["grade"].isna()
    if missing.any():
        log.warning("%d candidates have no truth grade and stay unlabelled", int(missing.sum()))
        labels = labels[~missing]
    labelled_at = {ds: datetime.fromisoformat(f"{ds}T00:00:00+00:00") for ds in labels["ds"].unique()}
    rows = [
        {
            "ds": ds,
            "task_id": f"simulated/{ds}/{query}",
            "page_id": f"{ds}/{query}",
            "query_id": query,
            "item_id": item,
            "modality": modality,
            "annotator": annotator,
            "grade": int(grade),
            "strategy": "full",
            "round": 0,
            "annotated_at": labelled_at[ds],
            "source_file": "simulated:truth.relevance",
            "ingested_at": labelled_at[ds],
        }  # fmt: skip
        for ds, query, item, modality, grade in labels[["ds", "query_id", "item_id", "modality", "grade"]].itertuples(
            index=False
        )
    ]
    if not rows:
        return 0
    lake.merge(rows, "silver.page_labels", update_when_changed=["grade"])
    log.info("simulated %d page labels (%d queries)", len(rows), labels["query_id"].nunique())
    return len(rows)


# ------------------------------------------------------------------------------ statistics


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


def aggregate_sweep(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (label_source, method, budget): seeds, mean NDCG@10 and its 95% t interval."""
    records = []
    for (source, method, budget), group in rows.groupby(["label_source", "method", "budget"], sort=True):
        mean, low, high = mean_and_interval(group["ndcg_at_10"].to_numpy())
        records.append(
            {
                "label_source": source,
                "method": method,
                "budget": budget,
                "seeds": len(group),
                "ndcg_at_10": mean,
                "ci_low": low,
                "ci_high": high,
            }
        )
    return pd.DataFrame.from_records(records)


def _per_seed(rows: pd.DataFrame, source: str, method: str, budget: float) -> pd.Series:
    chosen = rows[(rows["label_source"] == source) & (rows["method"] == method) & np.isclose(rows["budget"], budget)]
    return chosen.set_index("seed")["ndcg_at_10"]


def headline_comparisons(rows: pd.DataFrame, budgets: tuple[float, ...]) -> dict[str, Any]:
    """The issue's questions, per label source: SMAR@p / SFT@100% (paired by seed; does the
    mean ratio reach 0.97?), and SMAR - page_loss_only at each budget below 1 (paired by seed)."""
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
        comparisons[source] = entry
    return comparisons


# ------------------------------------------------------------------------------------ plot


METHOD_STYLE: dict[str, dict[str, Any]] = {
    "smar_pairwise": {"color": "tab:red", "marker": "o", "label": "SMAR (pairwise)"},
    "smar_listwise": {"color": "tab:orange", "marker": "s", "label": "SMAR (listwise)"},
    "page_loss_only": {"color": "tab:blue", "marker": "^", "label": "page loss only"},
    "lightgbm": {"color": "tab:green", "marker": "D", "label": "LightGBM lambdarank"},
    "sft": {"color": "black", "label": "SFT (100% labels)"},
    "fusion_raw": {"color": "tab:gray", "label": "fusion: raw score"},
    "fusion_zscore": {"color": "tab:purple", "label": "fusion: z-score"},
    "fusion_interleave": {"color": "tab:brown", "label": "fusion: interleave"},
}


def plot_sweep(aggregate: pd.DataFrame, path: Path, *, title: str) -> Path:
    """PNG of NDCG@10 against the budget: one panel per label source; lines with 95% CI bands
    for budgeted methods, horizontal lines for SFT (solid, with its CI band and a dotted 0.97 x
    SFT line) and for the label-free fusions (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = [source for source in LABEL_SOURCES if source in set(aggregate["label_source"])]
    figure, axes = plt.subplots(1, len(sources), figsize=(6.5 * len(sources), 4.8), squeeze=False, sharey=True)
    for axis, source in zip(axes[0], sources, strict=True):
        data = aggregate[aggregate["label_source"] == source]
        budgets = sorted(data.loc[~data["method"].isin(("sft", *FUSION_METHODS)), "budget"].unique())
        low_x, high_x = (min(budgets), max(budgets)) if budgets else (0.1, 1.0)
        for method, style in METHOD_STYLE.items():
            rows = data[data["method"] == method].sort_values("budget")
            if rows.empty:
                continue
            if method == "sft" or method in FUSION_METHODS:
                value = float(rows["ndcg_at_10"].iloc[0])
                linestyle = "-" if method == "sft" else "--"
                axis.axhline(value, color=style["color"], linestyle=linestyle, linewidth=1.2, label=style["label"])
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
    axes[0][0].set_ylabel("NDCG@10 (mean over seeds, 95% CI)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.12, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


# ------------------------------------------------------------------------------ the sweep


def sweep_plan(config: SweepConfig) -> list[tuple[int, str, float | None]]:
    """(seed, method, budget) of every run: budgeted methods at each budget, page_loss_only below
    1 (at 1 it is SFT), sft at 1, fusions once (budget None)."""
    plan: list[tuple[int, str, float | None]] = []
    for seed in config.seeds:
        for method in config.methods:
            if method in FUSION_METHODS:
                plan.append((seed, method, None))
            elif method == "sft":
                plan.append((seed, method, 1.0))
            else:
                for budget in config.budgets:
                    if method == "page_loss_only" and budget >= 1.0:
                        continue
                    plan.append((seed, method, budget))
    return plan


def run_budget_sweep(
    spark: SparkSession, lake: Lakehouse, config: SweepConfig, *, encode: TextEncodeFunction | None = None
) -> SweepSummary:
    """Run every (seed, method, budget) of `config`; write `gold.budget_sweep` (slice sweep_id)
    and the runs' `gold.reranker_runs` rows; save the plot and the summary CSV."""
    days = day_range(config.ds_start, config.ds_end)
    if config.simulate_labels:
        write_simulated_page_labels(spark, lake, ds_values=days, annotator=config.annotator)
    versions = pin_versions(lake)
    pages = prepare_pages(
        lake,
        ds_values=days,
        versions=versions,
        annotators=(config.annotator,) if config.simulate_labels else None,
        encode=encode,
        encoder_name=config.encoder_name,
    )
    sweep_id = config.sweep_id or content_id("sweep", {**config.definition(), "inputs": pages.fingerprint()})
    created_at = datetime.now(UTC)
    rows, records = [], []
    plan = sweep_plan(config)
    for seed, method, budget in tqdm(plan, desc=f"budget sweep {sweep_id}", disable=not config.progress):
        fitted = fit_and_evaluate(
            lake,
            pages,
            method=method,
            strategy=config.strategy,
            budget=budget,
            seed=seed,
            training=config.training,
            lightgbm=config.lightgbm,
            progress=False,
        )
        record = fitted.record
        records.append(record)
        for source in LABEL_SOURCES:
            value = record.test_metrics.get(f"{source}_ndcg_at_10")
            if value is None:
                continue
            rows.append(
                {
                    "sweep_id": sweep_id,
                    "run_id": record.run_id,
                    "method": method,
                    "strategy": record.strategy,
                    "budget": 0.0 if record.budget is None else float(record.budget),
                    "seed": seed,
                    "label_source": source,
                    "ndcg_at_10": float(value),
                    "validation_ndcg_at_10": record.validation_ndcg_at_10,
                    "train_labelled_fraction": record.validation_metrics.get("train_labelled_fraction"),
                    "train_pages": record.validation_metrics.get("train_pages"),
                    "test_queries": record.test_metrics.get("test_queries"),
                    "train_seconds": fitted.seconds,
                    "input_versions": json.dumps(pages.input_versions, sort_keys=True),
                    "created_at": created_at,
                }
            )
        log.info("%s budget=%s seed=%d: %s", method, budget, seed, record.test_metrics)
    register_runs(lake, records)
    frame = pd.DataFrame.from_records(rows)
    lake.overwrite_slice(rows, SWEEP_TABLE, {"sweep_id": sweep_id})

    aggregate = aggregate_sweep(frame)
    comparisons = headline_comparisons(frame, config.budgets)
    output_uri = join(lake.settings.reports, "sweep")
    output, publish = files.staged_folder(output_uri)  # written locally, published to the URI
    summary_path = output / f"{sweep_id}_summary.csv"
    aggregate.to_csv(summary_path, index=False)
    (output / f"{sweep_id}_comparisons.json").write_text(json.dumps(comparisons, indent=2, sort_keys=True))
    title = (
        f"{sweep_id}: {len(config.seeds)} seeds, strategy {config.strategy}, "
        f"{pages.train.n_pages} train / {pages.validation.n_pages} valid / {pages.test.n_pages} test queries"
    )
    plot_path = plot_sweep(aggregate, output / f"{sweep_id}.png", title=title)
    publish()
    return SweepSummary(
        sweep_id, frame, aggregate, comparisons, join(output_uri, plot_path.name), join(output_uri, summary_path.name),
        pages.input_versions,
    )  # fmt: skip

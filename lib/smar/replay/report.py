"""The human-readable replay report: one HTML page and one Markdown file, with matplotlib PNG plots.

Every number and plot comes from the summary rows the job wrote to gold.replay_metrics (read
back from the table) and from the decision written to gold.ab_decisions, so the report cannot
disagree with the tables. Files, under `<settings.reports>/replay/<run_id>/`:

* `index.html` and `report.md`: the decision and its reasons, guardrails, the click estimates
  next to the truth (synthetic data), the examination curve and every sanity gate, the metrics
  table with each row's minimum detectable effect and reliability;
* `metric_deltas.png`: deltas with their bootstrap intervals;
* `click_propensities.png`: the examination curve with its band, the raw position CTR ratios;
* `per_modality_ndcg.png`: per-modality NDCG of control and candidate;
* `ndcg_at_k.png`: NDCG@k curves of control and candidate;
* `exposure_by_position.png`: the modality at each position, control vs candidate.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are written by batch jobs
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from smar.replay.click_report import (
    CLICK_IMAGE,
    CurveContext,
    curve_failure,
    format_delta,
    format_value,
    html_click_section,
    is_synthetic,
    markdown_click_section,
    plot_click_propensities,
    reliability_text,
)
from smar.replay.decision import Decision, metric_label
from smar.replay.gates import GateResult
from smar.replay.measures import (
    ALL_SEGMENT,
    CLICKS,
    CROSS_MODAL_PAIR_ACCURACY,
    CROSS_MODAL_PNR,
    EXPOSURE_SHARE,
    NDCG,
    POSITION_SHARE,
)
from smar.vocabulary import CLICKS_DM, CLICKS_IIDR, CLICKS_PBM_IPS, CLICKS_PBM_SN, NO_LABELS, ORACLE, ORACLE_CLICKS

MODALITY_COLORS = {"web": "#4c72b0", "image": "#dd8452", "video": "#55a868", "answer": "#c44e52"}
ARM_COLORS = {"control": "#8c8c8c", "candidate": "#1f77b4"}
DECISION_COLORS = {"SHIP": "#1a7f37", "NO_SHIP": "#cf222e", "INCONCLUSIVE": "#9a6700"}
LABEL_SOURCE_NOTES = {
    ORACLE: "oracle: the synthetic generator's hidden grades (truth.relevance); demo data only, never real traffic",
    "page_labels": "page_labels: consensus (mean) annotator grade per (query, item) from silver.page_labels",
    CLICKS_PBM_IPS: "clicks_pbm_ips: item-level PBM IPS of clicks@k per page, examination curve from randomised "
    "traffic (docs/replay.md)",
    CLICKS_PBM_SN: "clicks_pbm_sn: PBM IPS self-normalised by each (query, item)'s expected examinations",
    CLICKS_IIDR: "clicks_iidr: independent-item doubly robust (mixture logging propensities, a click model fitted "
    "outside the scope); unbiased but high variance on little traffic",
    CLICKS_DM: "clicks_dm: the click model alone (direct method); biased, a diagnostic",
    ORACLE_CLICKS: "oracle_clicks: the generator's exact expected clicks@k of each order (synthetic data only)",
    NO_LABELS: "none: label-free page shape (modality exposure)",
}
#: Metrics shown in the report's main table and delta plot, in this order (position shares go to the plot only).
TABLE_METRICS = (NDCG, CROSS_MODAL_PNR, CROSS_MODAL_PAIR_ACCURACY, EXPOSURE_SHARE, CLICKS)


@dataclass(frozen=True)
class ReportContext:
    """What the report says about the run besides the metric rows."""

    run_id: str
    control: str
    candidate: str
    ds_start: str
    ds_end: str
    n_pages: int
    n_queries: int
    dropped_pages: int
    query_splits: tuple[str, ...]
    confidence_level: float
    bootstrap_method: str
    n_resamples: int
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. why click estimates were skipped
    curve: CurveContext | None = None  # the examination curve the click estimators divided by
    gates: tuple[GateResult, ...] = ()  # the click estimates' sanity gates


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by `write_report`."""

    directory: Path
    html: Path
    markdown: Path
    images: tuple[Path, ...]


def _table_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    shown = metrics[metrics["metric"].isin(TABLE_METRICS)].copy()
    shown["order"] = shown["metric"].map({name: index for index, name in enumerate(TABLE_METRICS)})
    shown["segment_order"] = (shown["segment"] != ALL_SEGMENT).astype(int)
    return shown.sort_values(["order", "label_source", "segment_order", "segment", "k"]).drop(
        columns=["order", "segment_order"]
    )


def _label(row: pd.Series) -> str:
    k = None if pd.isna(row["k"]) else int(row["k"])
    return metric_label(row["metric"], row["segment"], k, row["label_source"])


def _reliable(metrics: pd.DataFrame) -> pd.Series:
    """Rows not marked unreliable by a sanity gate (rows without the column count as reliable)."""
    if "reliable" not in metrics:
        return pd.Series(True, index=metrics.index)
    return metrics["reliable"].fillna(True).astype(bool)


# -- plots -------------------------------------------------------------------------------------
def plot_metric_deltas(metrics: pd.DataFrame, path: Path, confidence_level: float) -> Path:
    """Horizontal error bars: each metric's delta (candidate - control) with its interval; 0 marked."""
    families = [
        (
            "ranking quality (NDCG, cross-modal pair accuracy)",
            metrics["metric"].isin([NDCG, CROSS_MODAL_PAIR_ACCURACY]),
        ),
        ("modality exposure share in the top k", metrics["metric"] == EXPOSURE_SHARE),
        # Unreliable click rows are left out: a doubly robust interval of +/-30 would flatten the rest.
        ("clicks@k per page (counterfactual; reliable rows)", (metrics["metric"] == CLICKS) & _reliable(metrics)),
    ]
    panels = [(title, _table_rows(metrics[mask])) for title, mask in families if mask.any()]
    heights = [max(1.5, 0.32 * len(rows) + 0.8) for _, rows in panels] or [2.0]
    figure, axes = plt.subplots(len(panels) or 1, 1, figsize=(9, sum(heights)), gridspec_kw={"height_ratios": heights})
    axes = np.atleast_1d(axes)
    if not panels:
        axes[0].text(0.5, 0.5, "no metrics", ha="center", va="center")
        axes[0].axis("off")
    for axis, (title, rows) in zip(axes, panels):
        labels = [_label(row) for _, row in rows.iterrows()]
        deltas = rows["delta"].to_numpy(float)
        low = rows["ci_low"].to_numpy(float)
        high = rows["ci_high"].to_numpy(float)
        finite = np.isfinite(deltas) & np.isfinite(low) & np.isfinite(high)
        positions = np.arange(len(rows))[::-1]
        errors = np.vstack([deltas - low, high - deltas])
        axis.errorbar(deltas[finite], positions[finite], xerr=errors[:, finite], fmt="o", color=ARM_COLORS["candidate"],
                      ecolor="#555555", capsize=3)  # fmt: skip
        axis.axvline(0.0, color="#cf222e", linewidth=1, linestyle="--")
        axis.set_yticks(positions, labels, fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel(f"delta (candidate - control), {confidence_level:.0%} paired bootstrap interval")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_per_modality_ndcg(metrics: pd.DataFrame, path: Path) -> Path:
    """Grouped bars: per-modality NDCG of control and candidate, one panel per label source."""
    rows = metrics[(metrics["metric"] == NDCG) & (metrics["segment"] != ALL_SEGMENT)]
    sources = sorted(rows["label_source"].unique().tolist())
    figure, axes = plt.subplots(1, max(1, len(sources)), figsize=(4.5 * max(1, len(sources)), 3.6), squeeze=False)
    if not sources:
        axes[0, 0].text(0.5, 0.5, "no graded items in scope", ha="center", va="center")
        axes[0, 0].axis("off")
    for axis, source in zip(axes[0], sources):
        subset = rows[rows["label_source"] == source].sort_values("segment")
        x = np.arange(len(subset))
        for offset, arm in ((-0.2, "control"), (0.2, "candidate")):
            axis.bar(x + offset, subset[f"{arm}_value"].to_numpy(float), width=0.4, label=arm, color=ARM_COLORS[arm])
        axis.set_xticks(x, subset["segment"].tolist())
        k = subset["k"].dropna()
        axis.set_title(f"per-modality NDCG@{int(k.iloc[0]) if len(k) else '?'} [{source}]", fontsize=10)
        axis.set_ylim(0, 1.05)
        axis.legend(fontsize=8, loc="lower right")
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_ndcg_at_k(metrics: pd.DataFrame, path: Path) -> Path:
    """NDCG@k over k for control and candidate (whole page), one line pair per label source."""
    rows = metrics[(metrics["metric"] == NDCG) & (metrics["segment"] == ALL_SEGMENT)].sort_values("k")
    figure, axis = plt.subplots(figsize=(6.5, 3.8))
    styles = ["-", "--", ":"]
    for index, source in enumerate(sorted(rows["label_source"].unique().tolist())):
        subset = rows[rows["label_source"] == source]
        for arm in ("control", "candidate"):
            axis.plot(subset["k"].astype(int), subset[f"{arm}_value"].to_numpy(float), marker="o",
                      linestyle=styles[index % len(styles)], color=ARM_COLORS[arm],
                      label=f"{arm} [{source}]")  # fmt: skip
    if rows.empty:
        axis.text(0.5, 0.5, "no graded items in scope", ha="center", va="center", transform=axis.transAxes)
    axis.set_xlabel("k")
    axis.set_ylabel("NDCG@k")
    axis.set_ylim(0, 1.05)
    axis.set_title("NDCG@k, whole page", fontsize=10)
    axis.grid(alpha=0.3)
    if not rows.empty:
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_exposure_by_position(metrics: pd.DataFrame, path: Path) -> Path:
    """Stacked bars per position 1..k: the share of pages showing each modality there, control vs candidate."""
    rows = metrics[metrics["metric"] == POSITION_SHARE]
    modalities = sorted(rows["segment"].unique().tolist())
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for axis, arm in zip(axes, ("control", "candidate")):
        bottom = None
        for modality in modalities:
            subset = rows[rows["segment"] == modality].sort_values("k")
            shares = subset[f"{arm}_value"].fillna(0.0).to_numpy(float)
            positions = subset["k"].astype(int).to_numpy()
            bottom = np.zeros(len(shares)) if bottom is None else bottom
            axis.bar(positions, shares, bottom=bottom, color=MODALITY_COLORS.get(modality), label=modality)
            bottom = bottom + shares
        axis.set_title(f"{arm}: modality at each position", fontsize=10)
        axis.set_xlabel("position")
        axis.set_ylim(0, 1.0)
    axes[0].set_ylabel("share of pages")
    if modalities:
        # Legend top-down in the stacking order seen on the bars (last stacked = top).
        handles, labels = axes[1].get_legend_handles_labels()
        axes[1].legend(handles[::-1], labels[::-1], fontsize=8, loc="upper right", bbox_to_anchor=(1.28, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# -- documents ---------------------------------------------------------------------------------
def _summary_lines(context: ReportContext) -> list[tuple[str, str]]:
    return [
        ("run_id", context.run_id),
        ("control", context.control),
        ("candidate", context.candidate),
        ("days", f"{context.ds_start} .. {context.ds_end}"),
        ("query splits", ", ".join(context.query_splits)),
        ("pages (requests)", str(context.n_pages)),
        ("queries", str(context.n_queries)),
        ("pages dropped (unscored impressions)", str(context.dropped_pages)),
        ("intervals", f"{context.confidence_level:.0%} paired bootstrap over queries, {context.bootstrap_method}, "
                      f"{context.n_resamples} resamples, fixed seed"),
    ]  # fmt: skip


IMAGES = (
    ("metric_deltas.png", "Metric deltas with confidence intervals"),
    ("per_modality_ndcg.png", "Per-modality NDCG"),
    ("ndcg_at_k.png", "NDCG@k curves"),
    ("exposure_by_position.png", "Modality exposure by position"),
    (CLICK_IMAGE, "Click examination curve"),
)


def _html(metrics: pd.DataFrame, decision: Decision, context: ReportContext) -> str:
    escape = html.escape
    color = DECISION_COLORS.get(decision.decision, "#333333")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Replay {escape(context.run_id)}: {escape(decision.decision)}</title>",
        "<style>body{font-family:Helvetica,Arial,sans-serif;margin:24px;max-width:1100px;color:#1f2328}"
        "table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #d0d7de;padding:3px 8px;"
        "font-size:13px;text-align:right}th{background:#f6f8fa}td.name,th.name{text-align:left}"
        ".decision{color:#fff;padding:10px 16px;font-size:22px;font-weight:bold;display:inline-block;"
        "border-radius:6px}img{max-width:100%;border:1px solid #d0d7de;margin:6px 0 18px}"
        ".PASS{color:#1a7f37}.BREACH{color:#cf222e;font-weight:bold}.INCONCLUSIVE{color:#9a6700}</style>",
        "</head><body>",
        f"<h1>Offline replay: {escape(context.candidate)} vs {escape(context.control)}</h1>",
        f'<div class="decision" style="background:{color}">{escape(decision.decision)}</div>',
        "<h2>Reasons</h2><ul>",
        *[f"<li>{escape(reason)}</li>" for reason in decision.reasons],
        "</ul><h2>Run</h2><table>",
        *[
            f'<tr><th class="name">{escape(key)}</th><td class="name">{escape(value)}</td></tr>'
            for key, value in _summary_lines(context)
        ],
        "</table>",
    ]
    if context.notes:
        parts += ["<h2>Notes</h2><ul>", *[f"<li>{escape(note)}</li>" for note in context.notes], "</ul>"]
    parts += ['<h2>Guardrails</h2><table><tr><th class="name">guardrail</th><th class="name">metric</th>'
              "<th>threshold</th><th>delta</th><th>ci_low</th><th>ci_high</th><th>verdict</th></tr>"]  # fmt: skip
    for guardrail in decision.guardrails:
        name = metric_label(guardrail.metric, guardrail.segment, guardrail.k, guardrail.label_source)
        parts.append(
            f'<tr><td class="name">{escape(guardrail.name)}</td><td class="name">{escape(name)}</td>'
            f"<td>{guardrail.threshold:g}</td><td>{format_delta(guardrail.delta)}</td>"
            f"<td>{format_delta(guardrail.ci_low)}</td><td>{format_delta(guardrail.ci_high)}</td>"
            f'<td class="{guardrail.verdict}">{guardrail.verdict}</td></tr>'
        )
    parts.append("</table>")
    parts += html_click_section(metrics, context.curve, context.gates)
    for file_name, title in IMAGES:
        parts.append(f'<h2>{escape(title)}</h2><img src="{file_name}" alt="{escape(title)}">')
    parts += [
        "<h2>Metrics (gold.replay_metrics)</h2><table><tr>"
        '<th class="name">metric</th><th class="name">segment</th><th>k</th><th class="name">label_source</th>'
        "<th>control</th><th>candidate</th><th>delta</th><th>ci_low</th><th>ci_high</th><th>queries</th>"
        '<th>MDE</th><th class="name">reliable</th></tr>'
    ]
    for _, row in _table_rows(metrics).iterrows():
        parts.append(
            f'<tr><td class="name">{escape(row["metric"])}</td><td class="name">{escape(row["segment"])}</td>'
            f'<td>{"" if pd.isna(row["k"]) else int(row["k"])}</td><td class="name">{escape(row["label_source"])}</td>'
            f"<td>{format_value(row['control_value'])}</td><td>{format_value(row['candidate_value'])}</td>"
            f"<td>{format_delta(row['delta'])}</td><td>{format_delta(row['ci_low'])}</td>"
            f"<td>{format_delta(row['ci_high'])}</td><td>{int(row['n_queries'])}</td>"
            f'<td>{format_value(row.get("mde", float("nan")))}</td><td class="name">{escape(reliability_text(row))}</td></tr>'
        )
    parts.append("</table><h2>Label sources</h2><ul>")
    for source in sorted(metrics["label_source"].unique().tolist()):
        parts.append(f"<li>{escape(LABEL_SOURCE_NOTES.get(source, source))}</li>")
    parts.append("</ul></body></html>")
    return "\n".join(parts) + "\n"


def _markdown(metrics: pd.DataFrame, decision: Decision, context: ReportContext) -> str:
    lines = [
        f"# Offline replay: {context.candidate} vs {context.control}",
        "",
        f"**Decision: {decision.decision}**",
        "",
        "## Reasons",
        "",
        *[f"- {reason}" for reason in decision.reasons],
        "",
        "## Run",
        "",
        "| | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in _summary_lines(context)],
        "",
    ]
    if context.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in context.notes], ""]
    lines += ["## Guardrails", "", "| guardrail | metric | threshold | delta | ci_low | ci_high | verdict |",
              "|---|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for guardrail in decision.guardrails:
        name = metric_label(guardrail.metric, guardrail.segment, guardrail.k, guardrail.label_source)
        lines.append(
            f"| {guardrail.name} | {name} | {guardrail.threshold:g} | {format_delta(guardrail.delta)} | "
            f"{format_delta(guardrail.ci_low)} | {format_delta(guardrail.ci_high)} | {guardrail.verdict} |"
        )
    lines.append("")
    lines += markdown_click_section(metrics, context.curve, context.gates)
    for file_name, title in IMAGES:
        lines += [f"## {title}", "", f"![{title}]({file_name})", ""]
    lines += ["## Metrics (gold.replay_metrics)", "",
              "| metric | segment | k | label_source | control | candidate | delta | ci_low | ci_high | queries | MDE "
              "| reliable |", "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for _, row in _table_rows(metrics).iterrows():
        lines.append(
            f"| {row['metric']} | {row['segment']} | {'' if pd.isna(row['k']) else int(row['k'])} | "
            f"{row['label_source']} | {format_value(row['control_value'])} | {format_value(row['candidate_value'])} | "
            f"{format_delta(row['delta'])} | "
            f"{format_delta(row['ci_low'])} | {format_delta(row['ci_high'])} | {int(row['n_queries'])} | "
            f"{format_value(row.get('mde', float('nan')))} | {reliability_text(row)} |"
        )
    lines += ["", "## Label sources", ""]
    sources = sorted(metrics["label_source"].unique().tolist())
    lines += [f"- {LABEL_SOURCE_NOTES.get(source, source)}" for source in sources]
    return "\n".join(lines) + "\n"


def write_report(metrics: pd.DataFrame, decision: Decision, context: ReportContext, directory: Path) -> ReportFiles:
    """Write the plots, `index.html` and `report.md` of one replay run into `directory` (replacing them)."""
    directory.mkdir(parents=True, exist_ok=True)
    images = (
        plot_metric_deltas(metrics, directory / IMAGES[0][0], context.confidence_level),
        plot_per_modality_ndcg(metrics, directory / IMAGES[1][0]),
        plot_ndcg_at_k(metrics, directory / IMAGES[2][0]),
        plot_exposure_by_position(metrics, directory / IMAGES[3][0]),
        plot_click_propensities(context.curve, directory / CLICK_IMAGE, synthetic=is_synthetic(metrics),
                                reason=curve_failure(context.gates)),
    )  # fmt: skip
    html_path = directory / "index.html"
    markdown_path = directory / "report.md"
    html_path.write_text(_html(metrics, decision, context), encoding="utf-8")
    markdown_path.write_text(_markdown(metrics, decision, context), encoding="utf-8")
    return ReportFiles(directory, html_path, markdown_path, images)

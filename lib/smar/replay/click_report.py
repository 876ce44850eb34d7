"""The click part of the replay report: the examination curve, the click estimates next to the
truth (synthetic data), and every sanity gate. `smar.replay.report` places these sections."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are written by batch jobs
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from smar.replay.gates import GateResult
from smar.replay.measures import CLICKS
from smar.replay.oracle_clicks import true_examination
from smar.vocabulary import ORACLE_CLICKS

CURVE_COLOR = "#1f77b4"
CLICK_IMAGE = "click_propensities.png"


def format_value(value: float) -> str:
    """Numbers as the report prints them: 4 decimals; inf and NaN spelled out."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4f}"


def format_delta(value: float) -> str:
    """Deltas with an explicit sign, 4 decimals."""
    text = format_value(value)
    return text if text in ("n/a", "inf", "-inf") or text.startswith("-") else "+" + text


@dataclass(frozen=True)
class CurveContext:
    """The examination curve of a replay's click estimates, as gold.click_propensities stores it."""

    version: str
    ds_start: str
    ds_end: str
    method: str
    exploration_pages: int
    decided_pages: int
    exponent: float | None
    exponent_ci: tuple[float, float] | None
    gof_p_value: float
    confidence_level: float
    examination: tuple[float, ...]  # gamma_r, r = 1..R
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    impressions: tuple[float, ...]  # exploration pages with an item at r
    clicks: tuple[float, ...]  # their clicks at r

    def summary(self) -> str:
        """One sentence: how the curve was fitted, on what."""
        shape = (
            f"power law r^-eta, eta {self.exponent:.3f}"
            + (f" [{self.exponent_ci[0]:.3f}, {self.exponent_ci[1]:.3f}]" if self.exponent_ci else "")
            if self.exponent is not None
            else self.method
        )
        return (
            f"{self.version}: {shape}, goodness-of-fit p = {self.gof_p_value:.2g}; fitted on "
            f"{self.exploration_pages} randomised pages of {self.decided_pages} ({self.ds_start} .. {self.ds_end}, "
            f"every query split); {self.confidence_level:.0%} bootstrap band over pages"
        )


def plot_click_propensities(curve: CurveContext | None, path: Path, *, synthetic: bool, reason: str | None) -> Path:
    """The examination curve gamma_r with its band, the raw position CTR ratios it smooths, and on
    synthetic data the generator's true r^-0.8."""
    figure, axis = plt.subplots(figsize=(6.5, 3.8))
    if curve is None:
        axis.text(0.5, 0.5, "no examination curve:\n" + (reason or "not estimated")[:200], ha="center", va="center",
                  wrap=True, transform=axis.transAxes, fontsize=9)  # fmt: skip
        axis.axis("off")
    else:
        ranks = np.arange(1, len(curve.examination) + 1)
        impressions, clicks = np.asarray(curve.impressions), np.asarray(curve.clicks)
        with np.errstate(divide="ignore", invalid="ignore"):
            ctr = np.where(impressions > 0, clicks / impressions, np.nan)
        axis.fill_between(ranks, curve.ci_low, curve.ci_high, color=CURVE_COLOR, alpha=0.25,
                          label=f"{curve.confidence_level:.0%} bootstrap band")  # fmt: skip
        axis.plot(ranks, curve.examination, color=CURVE_COLOR, label=f"fitted ({curve.method})")
        axis.plot(ranks, ctr / ctr[0], "o", color="#555555", markersize=3, label="position CTR / CTR at 1")
        if synthetic:
            axis.plot(ranks, true_examination(ranks), "--", color="#cf222e", linewidth=1,
                      label="generator's true r^-0.8 (synthetic data)")  # fmt: skip
        axis.set_xlabel("position")
        axis.set_ylabel("P(examined), 1 at position 1")
        axis.set_ylim(0, 1.3)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
        axis.set_title(f"examination curve {curve.version}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def reliability_text(row: pd.Series) -> str:
    """'yes', or 'no' for rows a sanity gate marked unreliable (the reasons are in the gates table
    and in gold.replay_metrics.unreliable_reason)."""
    if "reliable" not in row or pd.isna(row["reliable"]) or bool(row["reliable"]):
        return "yes"
    return "no (see the sanity gates)"


def click_table(metrics: pd.DataFrame) -> list[list[str]]:
    """Rows of the click estimates table: per k and label source, the delta, its interval, the MDE,
    whether the row is reliable, and on synthetic data whether the interval covers the true delta."""
    rows = metrics[metrics["metric"] == CLICKS].sort_values(["k", "label_source"])
    truth = {int(row["k"]): float(row["delta"]) for _, row in rows[rows["label_source"] == ORACLE_CLICKS].iterrows()}
    table = []
    for _, row in rows.iterrows():
        k = int(row["k"])
        if row["label_source"] == ORACLE_CLICKS:
            covers = "(the truth)"
        elif k in truth and math.isfinite(row["ci_low"]) and math.isfinite(row["ci_high"]):
            covers = "yes" if row["ci_low"] <= truth[k] <= row["ci_high"] else "no"
        else:
            covers = "n/a"
        table.append([
            str(k), str(row["label_source"]), format_value(row["control_value"]), format_value(row["candidate_value"]),
            format_delta(row["delta"]), f"[{format_delta(row['ci_low'])}, {format_delta(row['ci_high'])}]",
            format_value(row.get("mde", float("nan"))), covers, reliability_text(row),
        ])  # fmt: skip
    return table


CLICK_HEADER = ("k", "label_source", "control", "candidate", "delta", "interval", "MDE", "covers the truth", "reliable")


def is_synthetic(metrics: pd.DataFrame) -> bool:
    """Whether the rows hold the simulator's truth (generator data)."""
    return bool((metrics["label_source"] == ORACLE_CLICKS).any())


def curve_failure(gates: tuple[GateResult, ...]) -> str | None:
    """Why there is no usable examination curve, if the propensity gate failed."""
    failed = [gate.reason for gate in gates if gate.name == "propensity" and not gate.passed]
    return failed[0] if failed else None


def _click_intro(metrics: pd.DataFrame, curve: CurveContext | None) -> list[str]:
    """Sentences above the click tables: what the curve is, what the rows are for."""
    lines = [
        "Counterfactual clicks@k per page of each order (docs/replay.md). A secondary guardrail only, "
        "and only where reliable: every sanity gate below passed. MDE: the smallest true delta the "
        "interval detects with 80% power."
    ]
    if curve is not None:
        lines.append(f"Examination curve {curve.summary()}.")
    if is_synthetic(metrics):
        lines.append("oracle_clicks is the truth (the generator's exact expected clicks): synthetic data only.")
    return lines


def html_click_section(metrics: pd.DataFrame, curve: CurveContext | None, gates: tuple[GateResult, ...]) -> list[str]:
    """The HTML of the click section: intro, estimates next to the truth, gates."""
    escape = html.escape
    if not (metrics["metric"] == CLICKS).any() and not gates:
        return []
    parts = ["<h2>Click estimates</h2>", *[f"<p>{escape(line)}</p>" for line in _click_intro(metrics, curve)]]
    parts.append("<table><tr>" + "".join(f'<th class="name">{escape(name)}</th>' for name in CLICK_HEADER) + "</tr>")
    parts += ["<tr>" + "".join(f'<td class="name">{escape(cell)}</td>' for cell in row) + "</tr>"
              for row in click_table(metrics)]  # fmt: skip
    parts.append('</table><h3>Sanity gates</h3><table><tr><th class="name">gate</th><th>verdict</th>'
                 '<th>value</th><th>threshold</th><th class="name">reason</th></tr>')  # fmt: skip
    for gate in gates:
        verdict = "PASS" if gate.passed else "FAIL"
        parts.append(
            f'<tr><td class="name">{escape(gate.name)}</td><td class="{"PASS" if gate.passed else "BREACH"}">'
            f"{verdict}</td><td>{gate.value:.4g}</td><td>{gate.threshold:g}</td>"
            f'<td class="name">{escape(gate.reason)}</td></tr>'
        )
    parts.append("</table>")
    return parts


def markdown_click_section(
    metrics: pd.DataFrame, curve: CurveContext | None, gates: tuple[GateResult, ...]
) -> list[str]:
    """The Markdown lines of the click section."""
    if not (metrics["metric"] == CLICKS).any() and not gates:
        return []
    lines = ["## Click estimates", "", *[f"{line}\n" for line in _click_intro(metrics, curve)]]
    lines += ["| " + " | ".join(CLICK_HEADER) + " |", "|" + "---|" * len(CLICK_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in click_table(metrics)]
    lines += ["", "### Sanity gates", "", "| gate | verdict | value | threshold | reason |", "|---|---|---:|---:|---|"]
    lines += [f"| {gate.name} | {'PASS' if gate.passed else 'FAIL'} | {gate.value:.4g} | {gate.threshold:g} | "
              f"{gate.reason} |" for gate in gates]  # fmt: skip
    return [*lines, ""]

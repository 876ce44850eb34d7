"""The A/B decision of a replay: SHIP, NO_SHIP or INCONCLUSIVE, with every reason spelled out.

Input: the replay's summary rows (one per metric, segment, k, label source, with the paired
bootstrap interval of the delta; `smar.replay.measures.SUMMARY_COLUMNS`), i.e. exactly the rows
written to gold.replay_metrics. Rules, in order:

1. Primary metric (default NDCG@10 over the whole page). Its label source is the first of
   `primary_label_sources` measured on at least `min_queries` held-out queries: page labels
   where they exist, else the oracle (hidden truth, synthetic data only). None: INCONCLUSIVE.
2. Guardrails, each with a threshold, judged on the interval (non-inferiority style), so noise
   alone neither passes nor breaks a guardrail:
   - per-modality NDCG (the order inside each modality, same label source as the primary) must
     not drop by more than `max_modality_ndcg_drop`: PASS if ci_low >= -threshold, BREACH if
     ci_high < -threshold, else INCONCLUSIVE;
   - modality exposure share in the top k must not move by more than `max_exposure_shift`
     (absolute share): PASS if the interval lies inside [-threshold, +threshold], BREACH if it
     lies entirely outside, else INCONCLUSIVE.
3. Any BREACH: NO_SHIP. A primary interval entirely below 0: NO_SHIP (the candidate is worse).
4. SHIP only when the primary interval lies entirely above `min_improvement` and every
   guardrail passes. Everything else (an interval containing 0, an inconclusive guardrail):
   INCONCLUSIVE.
5. Clicks are a secondary guardrail only, never a reason to ship: the `click_guardrail_source`
   estimate of clicks@`click_guardrail_k` may not drop by more than `max_clicks_drop` per page
   (non-inferiority on its interval). It is judged only when its row is `reliable` (every sanity
   gate of `smar.replay.gates` passed); an unreliable row is left out, its reason listed. Its
   BREACH means NO_SHIP; its INCONCLUSIVE does not block SHIP (click intervals are wide: the row's
   `mde` says how wide) and is listed among the reasons.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Literal

import pandas as pd
from pydantic import Field, model_validator

from smar.config import FrozenConfig
from smar.replay.measures import ALL_SEGMENT, CLICKS, EXPOSURE_SHARE, NDCG
from smar.vocabulary import CLICK_LABEL_SOURCES, CLICKS_PBM_IPS, NO_LABELS, ORACLE, PAGE_LABELS

DecisionValue = Literal["SHIP", "NO_SHIP", "INCONCLUSIVE"]
Verdict = Literal["PASS", "BREACH", "INCONCLUSIVE"]
#: The guardrail on clicks: secondary, judged only on reliable rows, blocks only by a BREACH.
CLICKS_GUARDRAIL = "clicks_drop"
SHIP: DecisionValue = "SHIP"
NO_SHIP: DecisionValue = "NO_SHIP"
INCONCLUSIVE: DecisionValue = "INCONCLUSIVE"


class DecisionConfig(FrozenConfig):
    """Thresholds of the decision. The defaults are the team's standard replay gate."""

    primary_metric: str = Field(default=NDCG, description="metric deciding SHIP (a gold.replay_metrics metric)")
    primary_segment: str = Field(default=ALL_SEGMENT, description="segment of the primary metric")
    primary_k: int | None = Field(default=10, description="cutoff of the primary metric (None for uncut metrics)")
    primary_label_sources: tuple[str, ...] = Field(
        default=(PAGE_LABELS, ORACLE),
        description="label sources for the primary metric and the NDCG guardrails, in order of preference",
    )
    min_queries: int = Field(
        default=30, ge=2, description="held-out queries needed before any decision but INCONCLUSIVE"
    )
    min_improvement: float = Field(
        default=0.0, description="SHIP needs the primary delta's interval entirely above this"
    )
    max_modality_ndcg_drop: float = Field(
        default=0.02, ge=0.0, description="largest tolerated drop of any modality's per-modality NDCG"
    )
    max_exposure_shift: float = Field(
        default=0.10, ge=0.0, description="largest tolerated change of any modality's exposure share in the top k"
    )
    click_guardrail_source: str = Field(
        default=CLICKS_PBM_IPS, description="click estimator of the secondary clicks guardrail (docs/replay.md)"
    )
    click_guardrail_k: int = Field(default=5, ge=1, description="k of the clicks@k guardrail")
    max_clicks_drop: float = Field(default=0.1, ge=0.0, description="largest tolerated drop of clicks@k per page")

    @model_validator(mode="after")
    def _click_source_is_an_estimator(self) -> DecisionConfig:
        if self.click_guardrail_source not in CLICK_LABEL_SOURCES:
            raise ValueError(f"click_guardrail_source must be one of {CLICK_LABEL_SOURCES}")
        return self


@dataclass(frozen=True)
class GuardrailResult:
    """One guardrail on one modality: its threshold, the measured delta and interval, the verdict."""

    name: str
    metric: str
    segment: str
    k: int | None
    label_source: str
    threshold: float
    delta: float
    ci_low: float
    ci_high: float
    verdict: Verdict
    explanation: str


@dataclass(frozen=True)
class Decision:
    """The decision with its reasons, the primary metric's numbers and every guardrail."""

    decision: DecisionValue
    reasons: list[str]
    primary_metric: str | None  # e.g. "ndcg@10 all [oracle]"
    primary_label_source: str | None
    primary_delta: float | None
    primary_ci_low: float | None
    primary_ci_high: float | None
    guardrails: list[GuardrailResult] = field(default_factory=list)

    def guardrails_json(self) -> str:
        """The guardrails as JSON (gold.ab_decisions.guardrails); non-finite numbers as null."""
        records = []
        for guardrail in self.guardrails:
            record = asdict(guardrail)
            for key in ("delta", "ci_low", "ci_high"):
                if not math.isfinite(record[key]):
                    record[key] = None
            records.append(record)
        return json.dumps(records, sort_keys=True)


def _number(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:+.4f}"


def _interval(low: float, high: float, level: float) -> str:
    return f"{level:.0%} CI [{_number(low)}, {_number(high)}]"


def metric_label(metric: str, segment: str, k: int | None, label_source: str) -> str:
    """A readable name of one metric row, e.g. "ndcg@10 all [oracle]"."""
    cut = "" if k is None or pd.isna(k) else f"@{int(k)}"
    return f"{metric}{cut} {segment} [{label_source}]"


def non_inferiority_verdict(ci_low: float, ci_high: float, threshold: float) -> Verdict:
    """Drop guardrail: PASS if ci_low >= -threshold, BREACH if ci_high < -threshold, else INCONCLUSIVE."""
    if math.isnan(ci_low) or math.isnan(ci_high):
        return "INCONCLUSIVE"
    if ci_low >= -threshold:
        return "PASS"
    if ci_high < -threshold:
        return "BREACH"
    return "INCONCLUSIVE"


def equivalence_verdict(ci_low: float, ci_high: float, threshold: float) -> Verdict:
    """Shift guardrail: PASS if the CI lies in [-t, t], BREACH if entirely outside it, else INCONCLUSIVE."""
    if math.isnan(ci_low) or math.isnan(ci_high):
        return "INCONCLUSIVE"
    if -threshold <= ci_low and ci_high <= threshold:
        return "PASS"
    if ci_low > threshold or ci_high < -threshold:
        return "BREACH"
    return "INCONCLUSIVE"


def _rows(metrics: pd.DataFrame, metric: str, label_source: str) -> pd.DataFrame:
    return metrics[(metrics["metric"] == metric) & (metrics["label_source"] == label_source)]


def _primary_row(metrics: pd.DataFrame, config: DecisionConfig) -> tuple[pd.Series | None, list[str]]:
    notes = []
    for label_source in config.primary_label_sources:
        rows = _rows(metrics, config.primary_metric, label_source)
        rows = rows[rows["segment"] == config.primary_segment]
        rows = rows[rows["k"].isna()] if config.primary_k is None else rows[rows["k"] == config.primary_k]
        if rows.empty:
            notes.append(f"no {label_source} measurements of the primary metric")
            continue
        row = rows.iloc[0]
        if int(row["n_queries"]) < config.min_queries:
            notes.append(f"{label_source}: only {int(row['n_queries'])} queries (min_queries={config.min_queries})")
            continue
        return row, notes
    return None, notes


def evaluate_guardrails(
    metrics: pd.DataFrame, *, label_source: str, config: DecisionConfig, confidence_level: float = 0.95
) -> list[GuardrailResult]:
    """Every guardrail on the summary rows: per-modality NDCG (on `label_source`), exposure share, and
    the secondary clicks guardrail on its estimator's reliable row."""
    results: list[GuardrailResult] = []
    modality_rows = _rows(metrics, NDCG, label_source)
    modality_rows = modality_rows[modality_rows["segment"] != ALL_SEGMENT]
    for _, row in modality_rows.sort_values("segment").iterrows():
        verdict = non_inferiority_verdict(row["ci_low"], row["ci_high"], config.max_modality_ndcg_drop)
        name = metric_label(NDCG, row["segment"], row["k"], label_source)
        explanation = (
            f"per-modality {name}: delta {_number(row['delta'])}, "
            f"{_interval(row['ci_low'], row['ci_high'], confidence_level)}; "
            f"may not drop below -{config.max_modality_ndcg_drop:g}: {verdict}"
        )
        results.append(GuardrailResult("modality_ndcg_drop", NDCG, row["segment"], _k(row["k"]), label_source,
                                       config.max_modality_ndcg_drop, float(row["delta"]), float(row["ci_low"]),
                                       float(row["ci_high"]), verdict, explanation))  # fmt: skip
    exposure_rows = _rows(metrics, EXPOSURE_SHARE, NO_LABELS)
    for _, row in exposure_rows.sort_values("segment").iterrows():
        verdict = equivalence_verdict(row["ci_low"], row["ci_high"], config.max_exposure_shift)
        name = metric_label(EXPOSURE_SHARE, row["segment"], row["k"], NO_LABELS)
        explanation = (
            f"{name}: shift {_number(row['delta'])}, {_interval(row['ci_low'], row['ci_high'], confidence_level)}; "
            f"may not move beyond +/-{config.max_exposure_shift:g}: {verdict}"
        )
        results.append(GuardrailResult("exposure_shift", EXPOSURE_SHARE, row["segment"], _k(row["k"]), NO_LABELS,
                                       config.max_exposure_shift, float(row["delta"]), float(row["ci_low"]),
                                       float(row["ci_high"]), verdict, explanation))  # fmt: skip
    for _, row in _click_guardrail_rows(metrics, config, reliable=True).iterrows():
        verdict = non_inferiority_verdict(row["ci_low"], row["ci_high"], config.max_clicks_drop)
        name = metric_label(CLICKS, row["segment"], row["k"], row["label_source"])
        explanation = (
            f"{name} (secondary): delta {_number(row['delta'])}, "
            f"{_interval(row['ci_low'], row['ci_high'], confidence_level)}; "
            f"may not drop below -{config.max_clicks_drop:g}: {verdict}"
        )
        results.append(GuardrailResult(CLICKS_GUARDRAIL, CLICKS, row["segment"], _k(row["k"]), row["label_source"],
                                       config.max_clicks_drop, float(row["delta"]), float(row["ci_low"]),
                                       float(row["ci_high"]), verdict, explanation))  # fmt: skip
    return results


def _click_guardrail_rows(metrics: pd.DataFrame, config: DecisionConfig, *, reliable: bool) -> pd.DataFrame:
    """The rows of the clicks guardrail's estimator and k that are (or are not) `reliable`.

    Rows without the column (written before the gates existed) count as unreliable: their
    estimates were never checked.
    """
    rows = _rows(metrics, CLICKS, config.click_guardrail_source)
    rows = rows[rows["k"] == config.click_guardrail_k]
    flags = rows["reliable"] if "reliable" in rows else pd.Series(False, index=rows.index)
    checked = flags.fillna(False).astype(bool)
    return rows[checked] if reliable else rows[~checked]


def _k(value: object) -> int | None:
    return None if value is None or pd.isna(value) else int(value)  # type: ignore[call-overload]


def decide(metrics: pd.DataFrame, config: DecisionConfig | None = None, *, confidence_level: float = 0.95) -> Decision:
    """SHIP / NO_SHIP / INCONCLUSIVE from the summary rows, by the rules in the module docstring."""
    config = config or DecisionConfig()
    primary, notes = _primary_row(metrics, config)
    if primary is None:
        missing_reasons = [
            f"no label source among {list(config.primary_label_sources)} measures {config.primary_metric} "
            f"on at least {config.min_queries} held-out queries",
            *notes,
        ]
        return Decision(INCONCLUSIVE, missing_reasons, None, None, None, None, None, [])

    label_source = str(primary["label_source"])
    name = metric_label(config.primary_metric, config.primary_segment, config.primary_k, label_source)
    delta, low, high = float(primary["delta"]), float(primary["ci_low"]), float(primary["ci_high"])
    guardrails = evaluate_guardrails(
        metrics, label_source=label_source, config=config, confidence_level=confidence_level
    )
    breaches = [guardrail for guardrail in guardrails if guardrail.verdict == "BREACH"]
    # The secondary clicks guardrail blocks only by a BREACH: its INCONCLUSIVE is listed, not blocking.
    unsure = [g for g in guardrails if g.verdict == "INCONCLUSIVE" and g.name != CLICKS_GUARDRAIL]
    notes += [g.explanation for g in guardrails if g.verdict == "INCONCLUSIVE" and g.name == CLICKS_GUARDRAIL]
    for _, row in _click_guardrail_rows(metrics, config, reliable=False).iterrows():
        reason = row.get("unreliable_reason")
        notes.append(f"{metric_label(CLICKS, row['segment'], row['k'], row['label_source'])} is unreliable and not "
                     f"used: {'not checked by the gates' if pd.isna(reason) else reason}")  # fmt: skip

    primary_text = (
        f"primary {name}: control {float(primary['control_value']):.4f}, "
        f"candidate {float(primary['candidate_value']):.4f}, delta {_number(delta)}, "
        f"{_interval(low, high, confidence_level)} over {int(primary['n_queries'])} queries"
    )
    reasons: list[str] = []
    if label_source == ORACLE:
        notes.append("oracle = the synthetic generator's hidden grades (truth.relevance); valid on demo data only")
    if breaches:
        decision: DecisionValue = NO_SHIP
        reasons.append(f"{len(breaches)} guardrail(s) breached")
        reasons += [guardrail.explanation for guardrail in breaches]
        reasons.append(primary_text)
    elif not math.isnan(high) and high < 0:
        decision = NO_SHIP
        reasons.append(f"{primary_text}: the candidate is worse (interval entirely below 0)")
    elif not math.isnan(low) and low > config.min_improvement and not unsure:
        decision = SHIP
        reasons.append(f"{primary_text}: the candidate is better (interval entirely above {config.min_improvement:g})")
        passed = sum(guardrail.verdict == "PASS" for guardrail in guardrails)
        reasons.append(
            f"all {passed} guardrails pass"
            if passed == len(guardrails)
            else f"{passed} of {len(guardrails)} guardrails pass; the secondary clicks guardrail is inconclusive "
            "(not blocking)"
        )
    else:
        decision = INCONCLUSIVE
        if math.isnan(low) or low <= config.min_improvement:
            reasons.append(
                f"{primary_text}: no improvement detected (interval not entirely above {config.min_improvement:g})"
            )
        else:
            reasons.append(f"{primary_text}: the candidate is better")
        if unsure:
            reasons.append(f"{len(unsure)} guardrail(s) inconclusive (interval straddles the threshold)")
            reasons += [guardrail.explanation for guardrail in unsure]
    reasons += notes
    return Decision(decision, reasons, name, label_source, delta, low, high, guardrails)

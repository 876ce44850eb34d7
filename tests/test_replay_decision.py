"""The A/B decision and its guardrails (smar.replay.decision), on hand-made summary rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from smar.replay.decision import (
    DecisionConfig,
    decide,
    equivalence_verdict,
    non_inferiority_verdict,
)
from smar.replay.measures import SUMMARY_COLUMNS

N = 50


def row(
    metric: str, segment: str, k: int | None, source: str, delta: float, low: float, high: float, n: int = N
) -> tuple:
    """A summary row with control value 0.5."""
    return (metric, segment, k, source, 0.5, 0.5 + delta, delta, low, high, n)


def summary(*rows: tuple) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(SUMMARY_COLUMNS))
    frame["k"] = frame["k"].astype("Int64")
    return frame


def good_candidate(**changes: tuple) -> pd.DataFrame:
    """Primary NDCG@10 clearly better; per-modality NDCG and exposure within their thresholds."""
    rows = {
        "primary": row("ndcg", "all", 10, "page_labels", 0.05, 0.03, 0.07),
        "ndcg_web": row("ndcg", "web", 10, "page_labels", 0.01, -0.005, 0.02),
        "ndcg_video": row("ndcg", "video", 10, "page_labels", 0.0, -0.01, 0.01),
        "exposure_web": row("exposure_share", "web", 10, "none", 0.02, -0.01, 0.05),
        "exposure_video": row("exposure_share", "video", 10, "none", -0.02, -0.05, 0.01),
    }
    rows.update(changes)
    return summary(*rows.values())


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-0.01, 0.03, "PASS"),
        (-0.2, -0.05, "BREACH"),
        (-0.05, 0.01, "INCONCLUSIVE"),
        (float("nan"), 0.1, "INCONCLUSIVE"),
    ],
)
def test_non_inferiority_verdict(low: float, high: float, expected: str) -> None:
    # threshold 0.02: PASS when ci_low >= -0.02, BREACH when ci_high < -0.02
    assert non_inferiority_verdict(low, high, 0.02) == expected


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(-0.05, 0.05, "PASS"), (0.12, 0.2, "BREACH"), (-0.3, -0.11, "BREACH"), (0.05, 0.15, "INCONCLUSIVE")],
)
def test_equivalence_verdict(low: float, high: float, expected: str) -> None:
    assert equivalence_verdict(low, high, 0.1) == expected


def test_a_clearly_better_candidate_within_guardrails_ships() -> None:
    decision = decide(good_candidate())
    assert decision.decision == "SHIP"
    assert decision.primary_label_source == "page_labels"
    assert decision.primary_delta == pytest.approx(0.05)
    assert [g.verdict for g in decision.guardrails] == ["PASS"] * 4
    assert any("all 4 guardrails pass" in reason for reason in decision.reasons)


def test_a_modality_ndcg_breach_flips_ship_to_no_ship() -> None:
    # Given the same candidate, but video's internal order clearly worse by 0.1
    breached = good_candidate(ndcg_video=row("ndcg", "video", 10, "page_labels", -0.1, -0.14, -0.06))
    # When decided with the default threshold (0.02), then with a tolerant one (0.2)
    strict = decide(breached)
    tolerant = decide(breached, DecisionConfig(max_modality_ndcg_drop=0.2))
    # Then the breach makes it NO_SHIP, naming the modality; without the breach it ships
    assert strict.decision == "NO_SHIP"
    assert any("video" in reason and "BREACH" in reason for reason in strict.reasons)
    assert tolerant.decision == "SHIP"


def test_an_exposure_shift_breach_flips_ship_to_no_ship() -> None:
    shifted = good_candidate(exposure_video=row("exposure_share", "video", 10, "none", -0.2, -0.25, -0.15))
    assert decide(shifted).decision == "NO_SHIP"
    assert decide(shifted, DecisionConfig(max_exposure_shift=0.3)).decision == "SHIP"
    verdicts = {g.segment: g.verdict for g in decide(shifted).guardrails if g.name == "exposure_shift"}
    assert verdicts == {"web": "PASS", "video": "BREACH"}


def test_an_interval_containing_zero_is_inconclusive() -> None:
    unsure = good_candidate(primary=row("ndcg", "all", 10, "page_labels", 0.01, -0.01, 0.03))
    decision = decide(unsure)
    assert decision.decision == "INCONCLUSIVE"
    assert "no improvement detected" in decision.reasons[0]


def test_a_worse_candidate_is_no_ship() -> None:
    worse = good_candidate(primary=row("ndcg", "all", 10, "page_labels", -0.04, -0.06, -0.02))
    decision = decide(worse)
    assert decision.decision == "NO_SHIP"
    assert "worse" in decision.reasons[0]


def test_an_inconclusive_guardrail_blocks_ship() -> None:
    straddling = good_candidate(ndcg_web=row("ndcg", "web", 10, "page_labels", -0.02, -0.05, 0.01))
    decision = decide(straddling)
    assert decision.decision == "INCONCLUSIVE"
    assert any("inconclusive" in reason for reason in decision.reasons)


def test_falls_back_to_oracle_only_when_page_labels_are_too_few_and_says_so() -> None:
    # Given page labels on 5 queries only and the oracle on 50
    rows = good_candidate(primary=row("ndcg", "all", 10, "page_labels", 0.05, 0.03, 0.07, n=5))
    rows = pd.concat([rows, summary(row("ndcg", "all", 10, "oracle", 0.04, 0.02, 0.06))], ignore_index=True)
    decision = decide(rows)
    assert decision.primary_label_source == "oracle"
    assert any("only 5 queries" in reason for reason in decision.reasons)
    assert any("hidden grades" in reason for reason in decision.reasons)
    # and with too few queries everywhere, nothing is decided
    assert decide(rows, DecisionConfig(min_queries=100)).decision == "INCONCLUSIVE"


def test_guardrails_serialise_to_json_with_thresholds() -> None:
    decision = decide(good_candidate())
    records = json.loads(decision.guardrails_json())
    assert {record["name"] for record in records} == {"modality_ndcg_drop", "exposure_shift"}
    assert {record["threshold"] for record in records} == {0.02, 0.1}

"""replay_clicks end to end on a tiny hand-made scope, and clicks as a secondary guardrail in the decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smar.metrics.bootstrap import BootstrapConfig
from smar.propensities import ExaminationCurve, PositionCounts
from smar.replay.clicks import ClickConfig, replay_clicks
from smar.replay.decision import decide
from smar.vocabulary import CLICKS_PBM_IPS, CLICKS_PBM_SN, ORACLE_CLICKS

FAST = BootstrapConfig(n_resamples=200)


def _curve(gamma: list[float]) -> ExaminationCurve:
    g = np.array(gamma)
    counts = PositionCounts(np.ones(len(g)), np.ones(len(g)), np.ones((1, len(g))), np.ones((1, len(g))))
    return ExaminationCurve("power_law", g, g, g, np.tile(g, (200, 1)), 0.95, 1.0, (1.0, 1.0), 1, True, 0.0, 1, 0.9,
                            counts)  # fmt: skip


SCOPE = pd.DataFrame({
    "ds": "d", "request_id": ["r1"] * 3 + ["r2"] * 3 + ["r3"] * 3,
    "query_id": ["q1"] * 6 + ["q2"] * 3, "item_id": list("abcabcxyz"),
    "position": [1, 2, 3] * 3, "clicked": [0, 1, 1, 1, 0, 0, 0, 0, 1],
    "control_rank": [1, 2, 3] * 3, "candidate_rank": [3, 1, 2, 3, 1, 2, 1, 2, 3],
})  # fmt: skip


def test_rows_by_hand() -> None:
    config = ClickConfig(min_differing_queries=1)
    result = replay_clicks(SCOPE, _curve([1.0, 0.5, 0.25]), cutoffs=(2,), bootstrap=FAST, config=config,
                           true_attractiveness=np.full(len(SCOPE), 0.5))  # fmt: skip
    rows = result.rows.set_index("label_source")
    # control = logged order: observed clicks in the top 2 per page; q1: (1 + 1) / 2 = 1, q2: 0 -> mean 0.5
    assert rows.loc[CLICKS_PBM_IPS, "control_value"] == pytest.approx(0.5)
    # candidate IPS: q1 page r1 = 2 + 2 = 4, page r2 = 0 -> 2; q2: z clicked at 3 moves to 3 -> 0; mean 1
    assert rows.loc[CLICKS_PBM_IPS, "candidate_value"] == pytest.approx(1.0)
    # oracle: attractiveness 0.5 everywhere, both arms fill ranks 1 and 2: 0.5 * (1 + 2^-0.8) per page
    assert rows.loc[ORACLE_CLICKS, "delta"] == pytest.approx(0.0)
    assert rows["reliable"].all()
    assert set(rows.index) == {CLICKS_PBM_IPS, CLICKS_PBM_SN, ORACLE_CLICKS}
    assert all(gate.passed for gate in result.gates)
    # the default support gate needs 20 queries on whose pages the arms differ; here only q1 differs
    default = replay_clicks(SCOPE, _curve([1.0, 0.5, 0.25]), cutoffs=(2,), bootstrap=FAST)
    assert not default.rows["reliable"].any()
    assert "only 1 queries" in default.rows["unreliable_reason"].iloc[0]


def test_no_curve_means_no_click_rows_and_a_reason() -> None:
    result = replay_clicks(SCOPE, None, cutoffs=(2,), bootstrap=FAST, curve_error="no exploration pages in the window",
                           true_attractiveness=np.full(len(SCOPE), 0.5))  # fmt: skip
    assert result.rows["label_source"].tolist() == [ORACLE_CLICKS]
    assert not result.gates[0].passed and "no exploration pages" in result.gates[0].reason


def test_out_of_range_estimate_is_unreliable() -> None:
    # logging propensities of 0.001 blow the DR correction past [0, k]
    config = ClickConfig(min_differing_queries=1)
    result = replay_clicks(SCOPE, _curve([1.0, 0.5, 0.25]), cutoffs=(2,), bootstrap=FAST, config=config,
                           predicted_attractiveness=np.full(len(SCOPE), 0.9),
                           logging_propensity=np.full(len(SCOPE), 0.001))  # fmt: skip
    dr = result.rows.set_index("label_source").loc["clicks_iidr"]
    assert not dr["reliable"] and "outside [0, k]" in dr["unreliable_reason"]


def _summary(click_delta: float, low: float, high: float, reliable: bool) -> pd.DataFrame:
    rows = [("ndcg", "all", 10, "oracle", 0.5, 0.6, 0.1, 0.05, 0.15, 40, True, None, 0.05),
            ("clicks", "all", 5, CLICKS_PBM_IPS, 1.0, 1.0 + click_delta, click_delta, low, high, 40, reliable,
             None if reliable else "aa[clicks_pbm_ips@5]: A/A replay gives +0.1, not exactly 0", 0.5)]  # fmt: skip
    columns = ["metric", "segment", "k", "label_source", "control_value", "candidate_value", "delta", "ci_low",
               "ci_high", "n_queries", "reliable", "unreliable_reason", "mde"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    frame["k"] = frame["k"].astype("Int64")
    return frame


def test_clicks_are_a_secondary_guardrail() -> None:
    inconclusive = decide(_summary(0.2, -0.3, 0.5, True))
    assert inconclusive.decision == "SHIP"  # an inconclusive clicks interval does not block
    assert (
        "0 of 1 guardrails pass; the secondary clicks guardrail is inconclusive (not blocking)" in inconclusive.reasons
    )
    assert any("clicks@5 all [clicks_pbm_ips] (secondary)" in reason for reason in inconclusive.reasons)
    assert "all 1 guardrails pass" in decide(_summary(0.2, -0.05, 0.5, True)).reasons
    breach = decide(_summary(-0.5, -0.8, -0.2, True))
    assert breach.decision == "NO_SHIP" and any("clicks@5" in reason for reason in breach.reasons)
    unreliable = decide(_summary(-0.5, -0.8, -0.2, False))
    assert unreliable.decision == "SHIP"  # an unreliable click row never enters the decision
    assert any("unreliable and not used" in reason for reason in unreliable.reasons)
    # rows written before the gates existed (no `reliable` column) are never used either
    unchecked = decide(_summary(-0.5, -0.8, -0.2, True).drop(columns=["reliable", "unreliable_reason"]))
    assert unchecked.decision == "SHIP" and any("not checked by the gates" in reason for reason in unchecked.reasons)

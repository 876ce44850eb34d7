"""Examination curve from randomised traffic: identification of exploration pages, fits, failures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smar.errors import InputRefused
from smar.propensities import (
    PositionCounts,
    PropensityFitError,
    _pava_decreasing,
    curve_version,
    fit_examination_curve,
    identify_exploration_pages,
    position_counts,
)


def _page(request_id: str, rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"ds": "d", "request_id": request_id, "modality": m, "position": p, "production_score": s} for m, p, s in rows]
    )


def test_a_page_is_exploration_iff_a_modality_is_out_of_production_order() -> None:
    logs = pd.concat([
        _page("prod", [("web", 1, 9.0), ("image", 2, 0.9), ("web", 3, 5.0), ("image", 4, 0.1)]),
        _page("shuffled", [("web", 1, 5.0), ("image", 2, 0.9), ("web", 3, 9.0), ("image", 4, 0.1)]),
        _page("unknown", [("web", 1, np.nan), ("web", 2, 1.0)]),
    ])  # fmt: skip
    pages, how = identify_exploration_pages(logs)
    flags = pages.set_index("request_id")
    assert how == "production_score_order"
    assert not flags.loc["prod", "is_exploration"]
    assert flags.loc["shuffled", "is_exploration"]
    assert not flags.loc["unknown", "is_exploration"] and flags.loc["unknown", "undecided"]


def _counts(impressions: list[float], clicks: list[float]) -> PositionCounts:
    # one page per impression unit so the bootstrap has rows: page i shows positions, clicks spread over pages
    n_pages = int(max(impressions))
    shown = np.zeros((n_pages, len(impressions)))
    clicked = np.zeros_like(shown)
    for r, (n, c) in enumerate(zip(impressions, clicks)):
        shown[: int(n), r] = 1
        clicked[: int(c), r] = 1
    return PositionCounts(shown.sum(0), clicked.sum(0), clicked, shown)


def test_power_law_recovers_an_exact_curve() -> None:
    # 1000 pages, clicks C_r = 400 * r^-1 exactly at r = 1, 2, 4 (power law with eta = 1): 400, 200, 100
    counts = _counts([1000, 1000, 1000, 1000], [400, 200, 133, 100])
    curve = fit_examination_curve(counts, n_bootstrap=200, min_pages=10, min_clicks=10)
    # Poisson MLE: d/db sum(C - mu) = 0 and d/deta: sum log r (C - mu) = 0; C_3 = 133 ~ 400/3
    assert curve.exponent == pytest.approx(1.0, abs=0.01)
    assert curve.examination[1] == pytest.approx(0.5, abs=0.005)
    assert curve.examination[0] == 1.0
    assert (curve.ci_low <= curve.examination + 1e-12).all() and (curve.examination <= curve.ci_high + 1e-12).all()
    assert curve.gof_p_value > 0.5


def test_isotonic_pools_violators() -> None:
    # CTRs 0.4, 0.2, 0.3, 0.1 with equal weights: PAVA pools (0.2, 0.3) -> 0.25
    assert _pava_decreasing(np.array([0.4, 0.2, 0.3, 0.1]), np.ones(4)).tolist() == pytest.approx(
        [0.4, 0.25, 0.25, 0.1]
    )
    counts = _counts([1000] * 4, [400, 200, 300, 100])
    curve = fit_examination_curve(counts, method="isotonic", n_bootstrap=200, min_pages=10, min_clicks=10)
    assert curve.examination.tolist() == pytest.approx([1.0, 0.625, 0.625, 0.25])


@pytest.mark.parametrize(
    ("impressions", "clicks", "message"),
    [
        ([100, 100, 100], [0, 0, 0], "no clicks"),
        ([100, 100, 100], [40, 0, 0], "fewer than two positions"),
        ([100, 100, 0], [40, 20, 0], "never shown"),
        ([100, 100, 100], [10, 20, 40], "exponent"),  # rising CTR: eta < 0
    ],
)
def test_degenerate_fits_raise_with_a_reason(impressions, clicks, message) -> None:
    with pytest.raises(PropensityFitError, match=message):
        fit_examination_curve(_counts(impressions, clicks), n_bootstrap=200, min_pages=10, min_clicks=0)


def test_too_few_pages_is_an_error() -> None:
    with pytest.raises(PropensityFitError, match="exploration pages"):
        fit_examination_curve(_counts([10, 10], [5, 2]), n_bootstrap=200, min_pages=50)


def test_isotonic_zero_tail_is_degenerate() -> None:
    with pytest.raises(PropensityFitError, match="zero examination"):
        fit_examination_curve(_counts([100, 100, 100], [40, 20, 0]), method="isotonic", n_bootstrap=200,
                              min_pages=10, min_clicks=10)  # fmt: skip


def test_a_failed_fit_is_refused_input_not_a_bug() -> None:
    # exit code 2 through the CLI: too little randomised traffic is the data's fault
    assert issubclass(PropensityFitError, InputRefused)


def test_position_counts_and_version() -> None:
    rows = pd.DataFrame({"ds": ["d"] * 4, "request_id": ["a", "a", "b", "b"], "position": [1, 2, 1, 2],
                         "clicked": [1, 0, 0, 1]})  # fmt: skip
    counts = position_counts(rows)
    assert counts.impressions.tolist() == [2, 2] and counts.clicks.tolist() == [1, 1] and counts.n_pages == 2
    with pytest.raises(PropensityFitError, match="no exploration pages"):
        position_counts(rows.iloc[:0])
    one = curve_version(ds_start="a", ds_end="b", method="power_law", identification="x", n_bootstrap=2000, seed=1,
                        inputs=counts.fingerprint())  # fmt: skip
    assert one.startswith("prop-") and len(one) == len("prop-") + 16
    assert one != curve_version(ds_start="a", ds_end="c", method="power_law", identification="x", n_bootstrap=2000,
                                seed=1, inputs=counts.fingerprint())  # fmt: skip
    # the same rows give the same fingerprint; other clicks another
    assert counts.fingerprint() == position_counts(rows.copy()).fingerprint()
    assert counts.fingerprint() != position_counts(rows.assign(clicked=[1, 1, 0, 1])).fingerprint()


def test_generator_days_give_the_true_exponent() -> None:
    from smar.propensities import estimate_examination_curve
    from smar.replay.simulation import simulate_logs

    sim = simulate_logs("demo", ["2026-10-30", "2026-10-31", "2026-11-01"])
    curve, pages, how = estimate_examination_curve(sim.logs, n_bootstrap=500)
    assert how == "production_score_order"
    # the truth is eta = 0.8; production pages are exactly those in production order
    assert curve.exponent_ci[0] < 0.8 < curve.exponent_ci[1]
    truly_shuffled = (
        (sim.logs["position"] != sim.logs["production_rank"]).groupby([sim.logs["ds"], sim.logs["request_id"]]).any()
    )
    assert (pages.set_index(["ds", "request_id"])["is_exploration"] == truly_shuffled).all()

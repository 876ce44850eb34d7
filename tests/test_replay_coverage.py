"""Coverage of the click estimators' intervals, clicks redrawn from the generator's true click model.

On one demo-size day (134 test pages of 45 queries: one day of the demo's replay), every click of the
window is redrawn from P(click) = r^-0.8 * attractiveness; each draw refits the examination
curve on that draw's exploration pages and replays a synthetic candidate against the logged
order. The estimand (the exact expected delta clicks@k on these pages) is fixed across draws.
"""

from __future__ import annotations

import numpy as np
import pytest

from smar.metrics.bootstrap import BootstrapConfig
from smar.replay.clicks import ClickConfig
from smar.replay.simulation import SimulatedReplay, coverage_experiment, noisy_oracle_candidate, simulate_logs
from smar.vocabulary import CLICKS_PBM_IPS, CLICKS_PBM_SN

DAYS = ["2026-11-01"]


@pytest.fixture(scope="module")
def sim():
    return simulate_logs("demo", DAYS)


def _check(frame, min_coverage: float) -> None:
    for (source, k), group in frame.groupby(["label_source", "k"]):
        assert group["delta"].notna().all(), f"{source}@{k} skipped on some draws"
        coverage = group["covered"].mean()
        assert coverage >= min_coverage, f"{source}@{k}: coverage {coverage:.1%} < {min_coverage:.0%}"
        # Never an interval entirely on the wrong side of a clearly nonzero truth.
        assert not group["wrong_side"].any(), f"{source}@{k}: an interval excludes the true sign"


def test_ips_interval_covers_the_true_delta_fast(sim) -> None:
    candidate = noisy_oracle_candidate(sim, strength=2.0)
    replay = SimulatedReplay(cutoffs=(5,), bootstrap=BootstrapConfig(n_resamples=400),
                             clicks=ClickConfig(propensity_bootstrap=400))  # fmt: skip
    frame = coverage_experiment(sim, candidate, n_draws=30, replay=replay)
    _check(frame, 0.9)
    assert frame["reliable"].all()
    # the point estimate has the sign of a clearly positive truth on (almost) every draw
    assert frame["true_delta"].iloc[0] > 0.2
    assert frame[frame["label_source"] == CLICKS_PBM_IPS]["sign_agrees"].mean() >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("strength", [2.0, -2.0, 0.0])
def test_coverage_200_draws(sim, strength: float) -> None:
    candidate = noisy_oracle_candidate(sim, strength=strength)
    replay = SimulatedReplay(bootstrap=BootstrapConfig(n_resamples=1000), clicks=ClickConfig(propensity_bootstrap=1000))
    frame = coverage_experiment(sim, candidate, n_draws=200, replay=replay)
    frame["width"] = frame["ci_high"] - frame["ci_low"]
    summary = frame.groupby(["label_source", "k"]).agg(
        coverage=("covered", "mean"),
        bias=("delta", lambda d: float(np.mean(d))),
        truth=("true_delta", "first"),
        sign=("sign_agrees", "mean"),
        width=("width", "mean"),
    )
    summary["bias"] -= summary["truth"]
    print(summary)
    if strength == 0.0:
        # production vs the logged order differs only on the ~10 randomised test pages: the support
        # gate marks every click row unreliable (the query bootstrap undercovers there: 72.5%)
        assert not frame["reliable"].any()
        return
    # The curve's goodness-of-fit gate rejects a true power law at its 0.1% level now and then
    # (measured: one draw in 200): such rows are unreliable, as they should be, and rare.
    assert frame["reliable"].mean() >= 0.98
    _check(frame, 0.9)
    _check(frame[frame["reliable"]], 0.9)
    if abs(frame["true_delta"].iloc[0]) > 0.2:
        for source in (CLICKS_PBM_IPS, CLICKS_PBM_SN):
            assert frame[frame["label_source"] == source]["sign_agrees"].mean() >= 0.9

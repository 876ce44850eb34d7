"""Paired bootstrap intervals of per-query deltas (smar.metrics.bootstrap)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smar.metrics.bootstrap import BootstrapConfig, paired_delta

FAST = BootstrapConfig(n_resamples=500)


def test_a_a_comparison_gives_a_zero_interval() -> None:
    # Given identical per-query values for control and candidate (an A/A replay)
    values = np.random.default_rng(1).uniform(0, 1, size=40)
    # When the paired delta is bootstrapped
    result = paired_delta(values, values.copy(), config=FAST)
    # Then the delta is 0 and the interval contains 0 (it is exactly [0, 0])
    assert result.delta == 0.0
    assert result.ci_low == 0.0 and result.ci_high == 0.0
    assert result.contains_zero()
    assert result.n_queries == 40


def test_a_a_comparison_of_an_infinite_ratio_is_still_zero() -> None:
    # Given a pooled ratio with no mis-ordered pair in either arm (PNR = inf)
    result = paired_delta([3.0, 2.0], [3.0, 2.0], control_denominator=[0.0, 0.0],
                          candidate_denominator=[0.0, 0.0], config=FAST)  # fmt: skip
    assert result.control_value == float("inf")
    assert (result.delta, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)


def test_noisy_equal_rankings_give_an_interval_around_zero() -> None:
    # Given candidate = control + symmetric noise with mean exactly 0
    rng = np.random.default_rng(2)
    control = rng.uniform(0, 1, size=60)
    noise = rng.normal(0, 0.05, size=30)
    candidate = control + np.concatenate([noise, -noise])
    # When bootstrapped
    result = paired_delta(control, candidate, config=FAST)
    # Then the point delta is ~0 and the interval straddles 0
    assert result.delta == pytest.approx(0.0, abs=1e-12)
    assert result.ci_low < 0.0 < result.ci_high


def test_a_consistent_improvement_excludes_zero() -> None:
    # Given a candidate better by 0.1 on every query, with a little noise
    rng = np.random.default_rng(3)
    control = rng.uniform(0.2, 0.6, size=50)
    candidate = control + 0.1 + rng.normal(0, 0.02, size=50)
    # When bootstrapped (percentile and BCa)
    for method in ("percentile", "BCa"):
        result = paired_delta(control, candidate, config=BootstrapConfig(n_resamples=500, method=method))
        # Then the delta is the mean difference and the interval lies above 0 around it
        assert result.delta == pytest.approx(np.mean(candidate - control))
        assert 0.0 < result.ci_low < result.delta < result.ci_high


def test_fixed_seed_reproduces_the_interval_and_another_seed_moves_it() -> None:
    rng = np.random.default_rng(4)
    control, candidate = rng.uniform(size=30), rng.uniform(size=30)
    first = paired_delta(control, candidate, config=FAST)
    again = paired_delta(control, candidate, config=FAST)
    other = paired_delta(control, candidate, config=BootstrapConfig(n_resamples=500, seed=7))
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)


def test_ratio_of_sums_pools_queries_by_their_denominators() -> None:
    # Given per-query pair counts: correct (numerator) and mis-ordered (denominator)
    control_correct, control_wrong = [3.0, 1.0], [1.0, 1.0]
    candidate_correct, candidate_wrong = [4.0, 2.0], [0.0, 2.0]
    result = paired_delta(
        control_correct, candidate_correct,
        control_denominator=control_wrong, candidate_denominator=candidate_wrong, config=FAST,
    )  # fmt: skip
    # Then each value is the pooled ratio: (3+1)/(1+1) = 2 and (4+2)/(0+2) = 3
    assert result.control_value == pytest.approx(2.0)
    assert result.candidate_value == pytest.approx(3.0)
    assert result.delta == pytest.approx(1.0)


def test_one_query_has_no_interval_and_bad_input_is_refused() -> None:
    single = paired_delta([0.2], [0.5], config=FAST)
    assert single.delta == pytest.approx(0.3)
    assert math.isnan(single.ci_low) and math.isnan(single.ci_high)
    assert single.contains_zero()  # an undefined interval cannot support a decision
    with pytest.raises(ValueError, match="finite"):
        paired_delta([0.2, float("nan")], [0.5, 0.4], config=FAST)
    with pytest.raises(ValueError, match="one value per query"):
        paired_delta([0.2, 0.3], [0.5], config=FAST)
    with pytest.raises(ValueError):
        BootstrapConfig(method="studentized")  # type: ignore[arg-type]

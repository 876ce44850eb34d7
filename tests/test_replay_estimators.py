"""Click estimators, gates and power, each checked against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from smar.replay.click_model import fit_attractiveness_model
from smar.replay.estimators import (
    direct_method_terms,
    independent_item_dr_terms,
    item_position_snips,
    legacy_snips_normaliser,
    mixture_logging_propensity,
    paired_bootstrap_with_curves,
    pbm_ips_terms,
    pbm_ratio_terms,
    per_query_means,
    query_aggregation,
)
from smar.replay.gates import (
    aa_gate,
    click_reliability,
    monotone_in_k_gate,
    propensity_gate,
    range_gate,
    self_normalisation_gate,
)
from smar.replay.power import (
    minimum_detectable_effect,
    standard_error_from_interval,
    units_needed,
)

GAMMA = np.array([1.0, 0.5, 0.25])
# One page of query q: items a, b, c logged at 1, 2, 3 with clicks 0, 1, 1; the arm ranks them 3, 1, 2.
LOGGED = np.array([1, 2, 3])
CLICKS = np.array([0, 1, 1])
TARGET = np.array([3, 1, 2])


def test_pbm_ips_by_hand() -> None:
    # b: 1 * gamma_1 / gamma_2 = 2; c: 1 * gamma_2 / gamma_3 = 2
    assert pbm_ips_terms(CLICKS, LOGGED, TARGET, GAMMA, k=2).tolist() == [0.0, 2.0, 2.0]
    assert pbm_ips_terms(CLICKS, LOGGED, TARGET, GAMMA, k=1).tolist() == [0.0, 2.0, 0.0]
    assert pbm_ips_terms(CLICKS, LOGGED, TARGET, GAMMA, k=2, max_weight=1.5).tolist() == [0.0, 1.5, 1.5]
    # the logged order itself: weights 1, the observed clicks in the top k
    assert pbm_ips_terms(CLICKS, LOGGED, LOGGED, GAMMA, k=2).tolist() == [0.0, 1.0, 0.0]
    # several curves at once: [B, rows]
    both = pbm_ips_terms(CLICKS, LOGGED, TARGET, np.vstack([GAMMA, [1.0, 1.0, 1.0]]), k=2)
    assert both.tolist() == [[0.0, 2.0, 2.0], [0.0, 1.0, 1.0]]


def test_pbm_ratio_by_hand() -> None:
    # Two pages of q: page 1 as above; page 2 logs c, a, b at 1, 2, 3 with a clicked; same target ranks.
    query = ["q"] * 6
    items = ["a", "b", "c", "a", "b", "c"]
    logged = [1, 2, 3, 2, 3, 1]
    clicks = [0, 1, 1, 1, 0, 0]
    target = [3, 1, 2, 3, 1, 2]
    # alpha_a = 1 / (1 + 0.5) = 2/3, alpha_b = 1 / (0.5 + 0.25) = 4/3, alpha_c = 1 / (0.25 + 1) = 0.8
    terms = pbm_ratio_terms(query, items, clicks, logged, target, GAMMA, k=2)
    assert terms.tolist() == pytest.approx([0.0, 4 / 3, 0.5 * 0.8, 0.0, 4 / 3, 0.5 * 0.8])
    pages = ["p1", "p1", "p1", "p2", "p2", "p2"]
    aggregation = query_aggregation(query, pages)
    assert per_query_means(terms, aggregation).tolist() == pytest.approx([4 / 3 + 0.4])
    # IPS on the same rows: page 1 = 4, page 2 = 0 (a moves to rank 3): mean 2
    ips = pbm_ips_terms(clicks, logged, target, GAMMA, k=2)
    assert per_query_means(ips, aggregation).tolist() == pytest.approx([2.0])


def test_independent_item_dr_by_hand() -> None:
    ahat = np.array([0.2, 0.4, 0.6])
    propensity = np.array([0.9, 0.9, 0.05])
    target = np.array([1, 3, 2])  # a stays at 1, b moves to 3, c to 2
    # direct: a 1 * 0.2, c 0.5 * 0.6; correction only for a (t = p = 1 <= k): (0 - 1 * 0.2) / 0.9
    terms = independent_item_dr_terms(CLICKS, LOGGED, target, GAMMA, ahat, propensity, k=2)
    assert terms.tolist() == pytest.approx([0.2 - 0.2 / 0.9, 0.0, 0.3])
    assert direct_method_terms(target, GAMMA, ahat, k=2).tolist() == pytest.approx([0.2, 0.0, 0.3])


def test_item_level_pbm_dr_is_ips() -> None:
    # [t<=k](gamma_t ahat + gamma_t/gamma_p (c - gamma_p ahat)) == c [t<=k] gamma_t / gamma_p for any ahat
    rng = np.random.default_rng(0)
    ahat = rng.random(3)
    dr = (TARGET <= 2) * (
        GAMMA[TARGET - 1] * ahat + GAMMA[TARGET - 1] / GAMMA[LOGGED - 1] * (CLICKS - GAMMA[LOGGED - 1] * ahat)
    )
    assert dr == pytest.approx(pbm_ips_terms(CLICKS, LOGGED, TARGET, GAMMA, k=2))


def test_mixture_propensity_by_hand() -> None:
    out = mixture_logging_propensity([1, 2, np.nan], [1, 3, 2], exploration_rate=0.05, page_length=32)
    assert out.tolist() == pytest.approx([0.95 + 0.05 / 32, 0.05 / 32, 0.05 / 32])


def test_item_position_snips_by_hand() -> None:
    # pages 1, 2 at positions 1, 2, propensity 0.5; the arm keeps (p1, 1), (p2, 1), (p2, 2)
    value, normalisers = item_position_snips(
        clicked=[1, 0, 1, 1], logged_position=[1, 1, 2, 2], target_rank=[1, 1, 1, 2], logging_propensity=[0.5] * 4, k=2
    )
    # position 1: w = 2, 2; sum c w / sum w = 2 / 4; position 2: w = 0, 2: 2 / 2
    assert value == pytest.approx(1.5)
    assert normalisers.tolist() == pytest.approx([2.0, 1.0])


def test_legacy_snips_normaliser_is_not_one() -> None:
    # mean(gamma_t / gamma_p) = (0.25 + 2 + 2) / 3: the old SNIPS divided by this, assuming 1
    assert legacy_snips_normaliser(LOGGED, TARGET, GAMMA) == pytest.approx(4.25 / 3)


def test_paired_bootstrap_with_curves() -> None:
    control = np.array([1.0, 2.0, 3.0])
    candidate = np.array([2.0, 2.0, 5.0])
    plain = paired_bootstrap_with_curves(control, candidate, n_resamples=500)
    assert plain.delta == pytest.approx(1.0) and plain.ci_low <= 1.0 <= plain.ci_high
    aa = paired_bootstrap_with_curves(control, control.copy(), np.ones((500, 3)), np.ones((500, 3)), n_resamples=500)
    assert (aa.delta, aa.ci_low, aa.ci_high) == (0.0, 0.0, 0.0)
    # curve replicates that all shift the candidate by +1: interval shifts by 1, point stays
    reps = paired_bootstrap_with_curves(control, candidate, np.tile(control, (500, 1)), np.tile(candidate + 1, (500, 1)),
                                        n_resamples=500)  # fmt: skip
    assert reps.delta == pytest.approx(1.0) and reps.ci_low >= 1.0 and reps.ci_high == pytest.approx(plain.ci_high + 1)
    # fewer curves than resamples: resample b uses curve b mod B (the same shift gives the same interval)
    few = paired_bootstrap_with_curves(control, candidate, np.tile(control, (7, 1)), np.tile(candidate + 1, (7, 1)),
                                       n_resamples=500)  # fmt: skip
    assert (few.ci_low, few.ci_high) == (reps.ci_low, reps.ci_high)
    with pytest.raises(ValueError, match="curve replicates"):
        paired_bootstrap_with_curves(control, candidate, np.ones((10, 3)), np.ones((10, 2)), n_resamples=500)
    with pytest.raises(ValueError, match="both arms"):
        paired_bootstrap_with_curves(control, candidate, np.ones((10, 3)), None, n_resamples=500)


def test_attractiveness_model_recovers_its_coefficients() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40_000, 1))
    gamma = GAMMA[rng.integers(0, 3, size=len(x))]
    alpha = 1 / (1 + np.exp(-(1.0 * x[:, 0] - 1.0)))
    clicks = (rng.random(len(x)) < gamma * alpha).astype(float)
    model = fit_attractiveness_model(x, clicks, gamma)
    assert model.converged
    assert model.coef[0] == pytest.approx(1.0, abs=0.15) and model.intercept == pytest.approx(-1.0, abs=0.15)


def test_estimators_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="> 0"):
        pbm_ips_terms(CLICKS, LOGGED, TARGET, [1.0, 0.0, 0.5], k=2)
    with pytest.raises(ValueError, match="curve has 3 positions"):
        pbm_ips_terms(CLICKS, LOGGED, [4, 1, 2], GAMMA, k=2)
    with pytest.raises(ValueError, match="probabilities"):
        independent_item_dr_terms(CLICKS, LOGGED, TARGET, GAMMA, [0.1, 2.0, 0.1], [0.5] * 3, k=2)


def test_gates() -> None:
    assert self_normalisation_gate("x", 1.05).passed and not self_normalisation_gate("x", 1.42).passed
    values = {"control": {5: 1.0, 10: 1.3}, "candidate": {5: 1.2, 10: 1.1}}
    gate = monotone_in_k_gate("dr", values)
    assert not gate.passed and "candidate" in gate.reason
    assert monotone_in_k_gate("ips", {"control": {5: 1.0, 10: 1.3}}).passed
    assert aa_gate("ips", 0.0, 0.0, 0.0).passed and not aa_gate("ips", 1e-15, 0.0, 0.0).passed
    assert not propensity_gate(fit_error="no clicks").passed
    assert not propensity_gate(fit_error=None, gof_p_value=1e-5, relative_band=0.2).passed
    assert not propensity_gate(fit_error=None, gof_p_value=0.5, relative_band=1.5).passed
    assert propensity_gate(fit_error=None, gof_p_value=0.5, relative_band=0.2).passed
    assert range_gate("ips", {"control": {5: 1.0}}).passed
    assert not range_gate("iidr", {"control": {5: -11.4}, "candidate": {5: 0.98}}).passed
    assert not range_gate("x", {"control": {1: 1.2}}).passed
    assert not range_gate("iidr", {"control": {5: 1.2}}, {5: (-11.5, 13.2)}).passed
    assert range_gate("ips", {"control": {5: 1.2}}, {5: (0.12, 0.78)}).passed
    reliable, reasons = click_reliability([aa_gate("a", 0.0, 0.0, 0.0), gate])
    assert not reliable and reasons == [gate.reason]


def test_power_by_hand() -> None:
    # interval +/- 1.96 -> SE 1 -> MDE = 1.96 + 0.8416 at 95% / 80%
    assert standard_error_from_interval(-1.959964, 1.959964) == pytest.approx(1.0, abs=1e-6)
    assert minimum_detectable_effect(-1.959964, 1.959964) == pytest.approx(2.8016, abs=1e-3)
    # MDE 0.6 over 1 day, target 0.3: (0.6 / 0.3)^2 = 4 days
    assert units_needed(0.6, 1, 0.3) == 4 and units_needed(0.58, 1, 0.3) == 4 and units_needed(0.2, 3, 0.3) == 2
    assert np.isnan(minimum_detectable_effect(float("nan"), 1.0))

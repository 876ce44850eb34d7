"""Off-policy estimators (IPS, SNIPS) and the position-based click model fitted by EM."""

from __future__ import annotations

import numpy as np
import pytest

from smar.replay.ope import (
    clicks_at_k_propensities,
    fit_position_based_model,
    importance_weights,
    ips,
    snips,
)

# A tiny log: weights p_target / p_logging are 0.5, 2, 0.5, 3.
REWARDS = [1.0, 0.0, 1.0, 1.0]
LOGGING = [0.5, 0.25, 0.8, 0.2]
TARGET = [0.25, 0.5, 0.4, 0.6]


def test_ips_on_a_tiny_log() -> None:
    # IPS = mean(1*0.5, 0*2, 1*0.5, 1*3) = 4 / 4
    assert ips(REWARDS, LOGGING, TARGET) == pytest.approx(1.0)


def test_snips_on_a_tiny_log() -> None:
    # SNIPS = (0.5 + 0 + 0.5 + 3) / (0.5 + 2 + 0.5 + 3)
    assert snips(REWARDS, LOGGING, TARGET) == pytest.approx(4.0 / 6.0)


def test_same_policy_gives_the_plain_mean() -> None:
    # Given target == logging, every weight is 1: both estimators are the logged mean
    assert ips(REWARDS, LOGGING, LOGGING) == pytest.approx(np.mean(REWARDS))
    assert snips(REWARDS, LOGGING, LOGGING) == pytest.approx(np.mean(REWARDS))


@pytest.mark.parametrize(
    ("rewards", "logging", "target", "message"),
    [
        ([1.0], [0.5], [0.5, 0.5], "differ in shape"),
        ([1.0, 0.0], [0.5, 0.0], [0.5, 0.5], "must be > 0"),
        ([1.0, 0.0], [0.5, -0.1], [0.5, 0.5], "must be > 0"),
        ([1.0, 0.0], [0.5, 0.5], [0.5, -0.5], ">= 0"),
        ([1.0, float("nan")], [0.5, 0.5], [0.5, 0.5], "non-finite"),
        ([1.0, 0.0], [0.5, float("inf")], [0.5, 0.5], "non-finite"),
        ([1.0, 0.0, 1.0], [0.5, 0.5], [0.5, 0.5], "shape"),
        ([], [], [], "empty"),
    ],
)
def test_estimators_validate_input(
    rewards: list[float], logging: list[float], target: list[float], message: str
) -> None:
    for estimator in (ips, snips):
        with pytest.raises(ValueError, match=message):
            estimator(rewards, logging, target)


def test_snips_refuses_all_zero_weights() -> None:
    assert importance_weights([0.5, 0.5], [0.0, 0.0]).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="all importance weights are 0"):
        snips([1.0, 0.0], [0.5, 0.5], [0.0, 0.0])


TRUE_EXAMINATION = np.array([1.0, 0.7, 0.5, 0.35, 0.25])


def simulate_log(seed: int, sessions: int = 4000, queries: int = 20):
    """Sessions of 5 items shown in a random order; clicks drawn from the PBM."""
    rng = np.random.default_rng(seed)
    items_per_page = len(TRUE_EXAMINATION)
    attractiveness = rng.uniform(0.1, 0.9, size=(queries, items_per_page))
    query_of_session = rng.integers(0, queries, sessions)
    item_at_position = np.argsort(rng.random((sessions, items_per_page)), axis=1)
    query_ids = np.repeat(query_of_session, items_per_page)
    item_ids = item_at_position.ravel()
    positions = np.tile(np.arange(1, items_per_page + 1), sessions)
    click_probability = TRUE_EXAMINATION[positions - 1] * attractiveness[query_ids, item_ids]
    clicks = (rng.random(click_probability.size) < click_probability).astype(int)
    return query_ids, item_ids, positions, clicks, attractiveness


def test_pbm_em_recovers_examination_probabilities() -> None:
    # Given 20,000 simulated impressions with known examination and attractiveness (seed fixed)
    query_ids, item_ids, positions, clicks, attractiveness = simulate_log(seed=7)
    # When the PBM is fitted by EM
    model = fit_position_based_model(query_ids, item_ids, positions, clicks, max_iterations=2000, tolerance=1e-6)
    # Then examination per rank is recovered (rank 1 normalised to 1) within 0.03
    assert model.converged
    np.testing.assert_allclose(model.examination, TRUE_EXAMINATION, atol=0.03)
    # And attractiveness per (query, item) is close on average
    fitted = model.attractiveness
    truth = attractiveness[fitted["query_id"].astype(int), fitted["item_id"].astype(int)]
    assert np.mean(np.abs(fitted["attractiveness"].to_numpy() - truth)) < 0.06
    assert fitted["impressions"].sum() == len(clicks)


def test_pbm_scale_is_only_fixed_by_normalisation() -> None:
    query_ids, item_ids, positions, clicks, _ = simulate_log(seed=11, sessions=1500)
    normalised = fit_position_based_model(query_ids, item_ids, positions, clicks, max_iterations=300)
    raw = fit_position_based_model(query_ids, item_ids, positions, clicks, max_iterations=300, normalize_top=False)
    # Then both give the same examination ratios, which is all that IPS needs
    np.testing.assert_allclose(raw.examination / raw.examination[0], normalised.examination, rtol=1e-9)
    assert raw.log_likelihood == pytest.approx(normalised.log_likelihood)


def test_pbm_validates_input() -> None:
    with pytest.raises(ValueError, match="1-based"):
        fit_position_based_model(["q"], ["a"], [0], [1])
    with pytest.raises(ValueError, match="0/1"):
        fit_position_based_model(["q"], ["a"], [1], [2])
    with pytest.raises(ValueError, match="one value per row"):
        fit_position_based_model(["q", "q"], ["a"], [1, 2], [1, 0])


def test_clicks_at_k_propensities() -> None:
    # Given examination 1, .5, .25 and items logged at ranks 1, 2, 3 that the target puts at 3, 1, 2
    logging, target = clicks_at_k_propensities([1.0, 0.5, 0.25], [1, 2, 3], [3, 1, 2], k=2)
    # Then logging = gamma at the logged rank; target = gamma at the new rank, 0 beyond k
    assert logging.tolist() == [1.0, 0.5, 0.25]
    assert target.tolist() == [0.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="beyond"):
        clicks_at_k_propensities([1.0, 0.5], [1, 2], [3, 1], k=3)


def test_ips_with_pbm_propensities_estimates_target_clicks_at_k() -> None:
    # Given a uniformly shuffled log and a target ordering by true attractiveness
    query_ids, item_ids, positions, clicks, attractiveness = simulate_log(seed=5, sessions=6000)
    model = fit_position_based_model(query_ids, item_ids, positions, clicks, max_iterations=2000, tolerance=1e-6)
    target_rank = np.argsort(np.argsort(-attractiveness, axis=1), axis=1) + 1  # [query, item] -> rank
    k = 3
    logging, target = clicks_at_k_propensities(model.examination, positions, target_rank[query_ids, item_ids], k=k)
    # When estimating clicks@3 per page with IPS (mean per row times rows per page)
    estimate = ips(clicks, logging, target) * len(TRUE_EXAMINATION)
    # Then it is close to the true expected clicks@3 of the target ordering
    top_attractiveness = -np.sort(-attractiveness, axis=1)[:, :k]
    per_query_truth = (top_attractiveness * TRUE_EXAMINATION[:k]).sum(axis=1)
    sessions_per_query = np.bincount(query_ids[:: len(TRUE_EXAMINATION)], minlength=len(attractiveness))
    truth = np.average(per_query_truth, weights=sessions_per_query)
    assert estimate == pytest.approx(truth, rel=0.05)

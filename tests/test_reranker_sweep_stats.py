"""Bootstrap over test queries and seeds (paired), and smar_merge's regime switch."""

from __future__ import annotations

import numpy as np
import pytest

from smar.reranker.merge_selection import RESIDUAL_FROM, SELF_TRAINED, choose_candidate, isotonic_fit, pseudo_labelled
from smar.reranker.sweep_stats import BootstrapDraws, compare, point_value, replicate_values, summarise


def test_replicates_of_constant_matrices_are_constant():
    draws = BootstrapDraws.draw(5, 40, replicates=200, seed=1)
    values = replicate_values(np.full((5, 40), 0.7), draws)
    np.testing.assert_allclose(values, 0.7)


def test_nan_queries_are_left_out_and_one_row_broadcasts():
    matrix = np.array([[1.0, np.nan, 0.0, 1.0]])
    draws = BootstrapDraws.draw(3, 4, replicates=500, seed=2)
    values = replicate_values(matrix, draws)
    assert point_value(matrix) == pytest.approx(2 / 3)
    assert np.all((values >= 0) & (values <= 1)) and not np.isnan(values).any()
    assert values.mean() == pytest.approx(2 / 3, abs=0.05)


def test_pairing_removes_shared_query_noise():
    # Given two methods whose per-query values share a large query effect, A = B + 0.01
    rng = np.random.default_rng(0)
    query_effect = rng.normal(0.0, 0.2, size=200)
    b = 0.8 + query_effect[None, :] + rng.normal(0.0, 0.01, size=(5, 200))
    a = b + 0.01
    draws = BootstrapDraws.draw(5, 200, replicates=1000, seed=3)

    # Then each method's own interval is wide, the paired difference's is narrow and above 0
    alone = summarise({("a", 0.1): a}, draws)[("a", 0.1)]
    assert alone["ci_high"] - alone["ci_low"] > 0.04
    paired = compare(a, b, draws)
    assert paired["difference"] == pytest.approx(0.01)
    assert 0.0 < paired["difference_ci_low"] < 0.01 < paired["difference_ci_high"] < 0.02
    assert paired["share_a_better"] == 1.0


def test_seed_noise_widens_the_interval():
    rng = np.random.default_rng(4)
    base = rng.normal(0.8, 0.05, size=(1, 150)).repeat(5, axis=0)
    noisy = base + rng.normal(0.0, 0.03, size=(5, 1))  # a per-seed shift
    draws = BootstrapDraws.draw(5, 150, replicates=1000, seed=5)
    quiet_width = np.subtract(*np.quantile(replicate_values(base, draws), [0.975, 0.025]))
    noisy_width = np.subtract(*np.quantile(replicate_values(noisy, draws), [0.975, 0.025]))
    assert noisy_width > quiet_width


def test_merge_regime_switch():
    assert choose_candidate(0.1) == SELF_TRAINED
    assert choose_candidate(0.31) == SELF_TRAINED
    assert choose_candidate(RESIDUAL_FROM) == "residual_merge"
    assert choose_candidate(1.0) == "residual_merge"


def test_isotonic_fit_is_the_least_squares_monotone_fit():
    # Given points whose y is not monotone in x
    x = np.array([3.0, 1.0, 2.0, 4.0, 5.0])
    y = np.array([1.0, 2.0, 0.0, 4.0, 3.0])
    xs, fitted = isotonic_fit(x, y)
    # Then sorted x, non-decreasing values, pooled means of the violators: (2 + 0 + 1) / 3 and (4 + 3) / 2
    assert xs.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    np.testing.assert_allclose(fitted, [1.0, 1.0, 1.0, 3.5, 3.5])
    # and no other non-decreasing fit has a smaller squared error (checked on random candidates)
    best = ((fitted - y[np.argsort(x)]) ** 2).sum()
    rng = np.random.default_rng(0)
    for _ in range(200):
        other = np.sort(rng.uniform(0, 4, size=5))
        assert ((other - y[np.argsort(x)]) ** 2).sum() >= best - 1e-12


def test_pseudo_labels_keep_real_labels_and_follow_the_teacher():
    from tests.reranker_helpers import synthetic_store

    store, _ = synthetic_store(6, seed=3, label_fraction=0.5)
    teacher = store.single_modal_score.astype(np.float64)
    labelled = pseudo_labelled(store, teacher)
    mask = store.label_mask
    np.testing.assert_array_equal(labelled.labels[mask], store.labels[mask])
    assert not np.isnan(labelled.labels).any()
    # a higher teacher score never gets a lower pseudo-grade
    rest = ~mask
    order = np.argsort(teacher[rest])
    assert np.all(np.diff(labelled.labels[rest][order]) >= -1e-6)
    assert labelled.labels[rest].min() >= store.labels[mask].min() - 1e-6

"""The merge ceiling: exact dynamic programme against brute force, and its page-level use."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smar.metrics import ndcg_at
from smar.reranker.ceiling import (
    best_interleaving,
    brute_force_interleaving,
    ceiling_ndcg_per_page,
    keeps_single_modal_order,
    merge_ceiling_scores,
)
from smar.reranker.training import ndcg_per_page
from tests.reranker_helpers import synthetic_store


@pytest.mark.parametrize("seed", range(40))
def test_dynamic_programme_equals_brute_force_on_small_pages(seed):
    # Given up to 4 random lists of 0..3 graded items (at most 8 items in all)
    rng = np.random.default_rng(seed)
    lists = [list(rng.integers(0, 5, size=rng.integers(0, 4))) for _ in range(rng.integers(1, 5))]
    lists = [gains for gains in lists if gains] or [[int(rng.integers(0, 5))]]
    k = int(rng.integers(1, 9))

    # When the best interleaving is searched both ways
    value, sequence = best_interleaving(lists, k=k)

    # Then the values agree, and the returned sequence realises that value and keeps list orders
    assert value == pytest.approx(brute_force_interleaving(lists, k=k), abs=1e-9)
    taken = [0] * len(lists)
    realised = 0.0
    for position, index in enumerate(sequence, start=1):
        realised += lists[index][taken[index]] / math.log2(position + 1)
        taken[index] += 1
    assert realised == pytest.approx(value, abs=1e-9)
    assert len(sequence) == min(k, sum(len(gains) for gains in lists))


def test_a_hand_computed_page():
    # Given web grades [1, 4] (web#1 worse than web#2, order kept) and image [3]
    value, sequence = best_interleaving([[1, 4], [3]], k=2)
    # Then the best two slots are image#1, web#1 (web#2 cannot jump its own list's head):
    # 3/log2(2) + 1/log2(3) = 3.631 beats web#1, web#2 = 1 + 4/log2(3) = 3.524
    assert sequence == [1, 0]
    assert value == pytest.approx(3 + 1 / math.log2(3))


def test_ceiling_scores_keep_each_order_and_bound_every_order_keeping_method():
    # Given synthetic pages with full grades
    store, grades = synthetic_store(30, seed=3, min_items=6, max_items=10)

    # When the ceiling is computed
    scores = merge_ceiling_scores(store, grades)
    ceiling = ceiling_ndcg_per_page(store, grades)

    # Then its order keeps every single-modal order, and it is at least as good as any other
    # order-keeping merge on every page (here: raw scores, and random per-modality offsets)
    assert keeps_single_modal_order(store, scores)
    rng = np.random.default_rng(0)
    for _ in range(5):
        shifted = store.single_modal_score + rng.normal(scale=2.0, size=4)[store.modality_id]
        assert keeps_single_modal_order(store, shifted)
        other = ndcg_per_page(store, shifted, grades)
        assert np.all(np.nan_to_num(ceiling) >= np.nan_to_num(other) - 1e-9)
    # and never above the unconstrained ideal (1.0)
    assert np.nanmax(ceiling) <= 1.0 + 1e-9


def test_ceiling_matches_the_metric_on_one_page():
    store, grades = synthetic_store(1, seed=1, min_items=7, max_items=7)
    scores = merge_ceiling_scores(store, grades, k=10)
    lists = {}
    for row in np.argsort(store.rank_in_modality, kind="stable"):
        lists.setdefault(int(store.modality_id[row]), []).append(float(grades[row]))
    value, _ = best_interleaving([lists[m] for m in sorted(lists)], k=10)
    ideal = sum(g / math.log2(p + 1) for p, g in enumerate(sorted(grades, reverse=True)[:10], start=1))
    expected = value / ideal
    measured = ndcg_at(grades, scores, k=10, doc_ids=store.item_id, gain="linear", ties="doc_id_desc")
    assert measured == pytest.approx(expected)


def test_order_check_detects_a_swap():
    store, _ = synthetic_store(3, seed=2)
    assert keeps_single_modal_order(store, store.single_modal_score)
    assert not keeps_single_modal_order(store, -store.single_modal_score)

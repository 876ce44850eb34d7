"""The merge ceiling: the best NDCG@k a page can reach while keeping every modality's
single-modal order exactly and only choosing how to interleave the modality lists.

A merge of one page is an interleaving of its M ranked lists L_1..L_M (each list in
single-modal rank order, `rank_in_modality` 1 = best). Its DCG@k is

    DCG@k = sum_{p=1..k} gain(item at slot p) / log2(p + 1),      gain = grade (linear)

and the item at slot p is the (c_m + 1)-th item of the list m chosen at p, where c_m counts the
items already taken from m. The contribution of a slot depends only on (p, the item), so the
best DCG@k over all interleavings is exact by dynamic programming over the counts taken:

    best(c_1..c_M) = max_{m: c_m >= 1} best(c - e_m) + gain(L_m[c_m]) / log2(|c| + 1)
    best(0..0) = 0,   over all states with |c| = sum_m c_m <= k,

and the ceiling is max_{|c| = min(k, n)} best(c) / IDCG@k (IDCG: all graded items sorted by
grade). At most C(k + M, M) states (1001 for k = 10, M = 4), so a page costs microseconds.
Items without a grade (NaN) count as gain 0 in the merge, as in `ndcg_per_page`, where such
items are dropped from the ranking; here they stay in the lists (they take a slot), which is
what a served page does. Use `ceiling_ndcg_per_page(..., drop_ungraded=True)` for the
evaluation's convention (rank only graded items), which is what the sweep reports.

`merge_ceiling_scores` returns per-item scores that realise the best interleaving (n - slot),
so the ceiling is evaluated by the very same metric code as every method.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from smar.reranker.store import PageStore
from smar.reranker.training import ndcg_per_page


def modality_lists(modality_ids: NDArray[np.integer], ranks: NDArray[np.integer]) -> list[NDArray[np.int64]]:
    """Item offsets of one page grouped by modality, each in single-modal rank order
    (rank ascending, offset ascending for equal ranks); modalities in ascending id order."""
    lists = []
    for modality in np.unique(modality_ids):
        rows = np.flatnonzero(modality_ids == modality)
        lists.append(rows[np.lexsort((rows, ranks[rows]))].astype(np.int64))
    return lists


def best_interleaving(
    gain_lists: Sequence[Sequence[float] | NDArray[np.floating]], *, k: int = 10
) -> tuple[float, list[int]]:
    """(best DCG@k, the list index chosen at each slot 1..min(k, n)) over all interleavings of
    `gain_lists` (each in its fixed order), by the dynamic programme of the module docstring.
    Ties between equally good choices: the lower list index, filled first."""
    lengths = [len(gains) for gains in gain_lists]
    slots = min(k, sum(lengths))
    discounts = [1.0 / math.log2(position + 1) for position in range(1, slots + 1)]
    start = tuple(0 for _ in lengths)
    best: dict[tuple[int, ...], float] = {start: 0.0}
    choice: dict[tuple[int, ...], int] = {}
    frontier = [start]
    for position in range(slots):
        following: dict[tuple[int, ...], float] = {}
        for state in frontier:
            value = best[state]
            for index, length in enumerate(lengths):
                if state[index] >= length:
                    continue
                successor = state[:index] + (state[index] + 1,) + state[index + 1 :]
                candidate = value + float(gain_lists[index][state[index]]) * discounts[position]
                if successor not in following or candidate > following[successor] + 1e-12:
                    following[successor] = candidate
                    choice[successor] = index
        best.update(following)
        frontier = sorted(following)
    if not frontier:
        return 0.0, []
    final = max(frontier, key=lambda state: (best[state], tuple(-count for count in state)))
    sequence: list[int] = []
    state = final
    while any(state):
        index = choice[state]
        sequence.append(index)
        state = state[:index] + (state[index] - 1,) + state[index + 1 :]
    return best[final], sequence[::-1]


def brute_force_interleaving(gain_lists: Sequence[Sequence[float] | NDArray[np.floating]], *, k: int = 10) -> float:
    """The best DCG@k by enumerating every interleaving (exponential; for tests)."""
    labels = [index for index, gains in enumerate(gain_lists) for _ in gains]
    best = 0.0
    for sequence in set(itertools.permutations(labels)):
        taken = [0] * len(gain_lists)
        value = 0.0
        for position, index in enumerate(sequence[:k], start=1):
            value += float(gain_lists[index][taken[index]]) / math.log2(position + 1)
            taken[index] += 1
        best = max(best, value)
    return best


def merge_ceiling_scores(
    store: PageStore, grades: NDArray[np.floating], *, k: int = 10, drop_ungraded: bool = True
) -> NDArray[np.float32]:
    """[N] scores whose order on every page is the best single-modal-order-preserving
    interleaving for `grades` ([N], NaN = ungraded): the first k slots from the dynamic
    programme, the rest of each list after them. `drop_ungraded`: ungraded items are left out
    of the lists (the evaluation ranks graded items only) and scored below every graded one."""
    scores = np.zeros(store.n_items, dtype=np.float32)
    for page in range(store.n_pages):
        start, stop = int(store.offsets[page]), int(store.offsets[page + 1])
        page_grades = np.asarray(grades[start:stop], dtype=np.float64)
        graded = ~np.isnan(page_grades) if drop_ungraded else np.ones(stop - start, dtype=bool)
        modality_ids = store.modality_id[start:stop]
        ranks = store.rank_in_modality[start:stop]
        lists = [rows[graded[rows]] for rows in modality_lists(modality_ids, ranks)]
        lists = [rows for rows in lists if len(rows)]
        gains = [np.nan_to_num(page_grades[rows], nan=0.0) for rows in lists]
        _, sequence = best_interleaving(gains, k=k)
        taken = [0] * len(lists)
        order: list[int] = []
        for index in sequence:
            order.append(int(lists[index][taken[index]]))
            taken[index] += 1
        # After the k chosen slots: the rest of every list, interleaved by rank (keeps each order).
        rest = [
            (int(rank), index, int(row))
            for index, rows in enumerate(lists)
            for rank, row in enumerate(rows)
            if rank >= taken[index]
        ]
        order.extend(row for _, _, row in sorted(rest))
        page_scores = np.full(stop - start, -1.0, dtype=np.float32)  # ungraded (dropped) items
        page_scores[np.asarray(order, dtype=np.int64)] = np.arange(len(order), 0, -1, dtype=np.float32)
        scores[start:stop] = page_scores
    return scores


def ceiling_ndcg_per_page(
    store: PageStore, grades: NDArray[np.floating], *, k: int = 10, drop_ungraded: bool = True
) -> NDArray[np.float64]:
    """[P] the merge ceiling's NDCG@k per page (NaN for a page without a relevant item), through
    `ndcg_per_page` on `merge_ceiling_scores`."""
    scores = merge_ceiling_scores(store, grades, k=k, drop_ungraded=drop_ungraded)
    return ndcg_per_page(store, scores, grades, k=k)


def keeps_single_modal_order(store: PageStore, scores: NDArray[np.floating]) -> bool:
    """True when on every page and modality, a better single-modal rank never gets a lower
    score (ties allowed): the property a calibrated merge guarantees by construction."""
    for page in range(store.n_pages):
        start, stop = int(store.offsets[page]), int(store.offsets[page + 1])
        for rows in modality_lists(store.modality_id[start:stop], store.rank_in_modality[start:stop]):
            ordered = np.asarray(scores[start:stop], dtype=np.float64)[rows]
            if np.any(np.diff(ordered) > 1e-6 * max(1.0, float(np.abs(ordered).max(initial=0.0)))):
                return False
    return True

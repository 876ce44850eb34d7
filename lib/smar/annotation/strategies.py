"""Which items of one modality's ranked list get a page-level label, and in what order annotators
see them.

Positions are 0-based ranks in the single-modal ranker's order (0 = that ranker's best item).
Every strategy labels the same number of items for a given list length and budget:

    count(n, p) = 0                               if n == 0
                = min(n, max(1, floor(p * n + 0.5)))  otherwise

i.e. p * n rounded half up (not Python's round-half-to-even, so 2.5 -> 3 and 0.5 -> 1), at least
one item for every modality present on the page, never more than the list holds.
"""

from __future__ import annotations

import math

import numpy as np

from smar.vocabulary import BUDGET_STRATEGIES, DEFAULT_BUDGET, BudgetStrategy


def label_count(n_items: int, budget: float = DEFAULT_BUDGET) -> int:
    """Items to label among `n_items`: max(1, p*n rounded half up), capped at n; 0 if n == 0."""
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    if not (0.0 < budget <= 1.0) or math.isnan(budget):
        raise ValueError(f"budget must be a fraction in (0, 1], got {budget}")
    if n_items == 0:
        return 0
    return min(n_items, max(1, math.floor(budget * n_items + 0.5)))


def select_positions(
    strategy: BudgetStrategy | str,
    n_items: int,
    budget: float = DEFAULT_BUDGET,
    *,
    rng: np.random.Generator | None = None,
    band_index: int = 1,
) -> np.ndarray:
    """Sorted 0-based positions to label in one modality's ranked list of `n_items`.

    - `top`: positions 0 .. count-1.
    - `slice`: the contiguous band starting at `band_index * count` (default 1 = the second band,
      as the paper's authors used). Clamped, not wrapped: a band that would run past the end is
      moved back to end on the last item, so it stays contiguous and keeps `count` items.
    - `random`: `count` positions uniformly without replacement, drawn from `rng` (required).
    - `stratified`: the list is cut into `count` strata of (near-)equal width, boundaries
      floor(s * n / count); the centre of each stratum, (first + last) // 2, is taken. This is
      deterministic (`rng` is not used), and every stratum is non-empty because count <= n.
    """
    count = label_count(n_items, budget)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if strategy == "top":
        positions = np.arange(count)
    elif strategy == "slice":
        if band_index < 0:
            raise ValueError(f"band_index must be >= 0, got {band_index}")
        start = min(band_index * count, n_items - count)
        positions = np.arange(start, start + count)
    elif strategy == "random":
        if rng is None:
            raise ValueError("strategy 'random' needs rng (a numpy.random.Generator)")
        positions = rng.choice(n_items, size=count, replace=False)
    elif strategy == "stratified":
        edges = (np.arange(count + 1) * n_items) // count
        positions = (edges[:-1] + edges[1:] - 1) // 2
    else:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {BUDGET_STRATEGIES}")
    return np.sort(positions.astype(np.int64))


def select_items(
    strategy: BudgetStrategy | str,
    ranked_items_by_modality: dict[str, list[str]],
    budget: float = DEFAULT_BUDGET,
    *,
    rng: np.random.Generator | None = None,
    band_index: int = 1,
) -> dict[str, list[str]]:
    """Apply `select_positions` to each modality's ranked list; returns the chosen item ids in rank
    order. Modalities are visited in sorted name order so a seeded `rng` gives the same draw
    whatever the dict's insertion order."""
    chosen: dict[str, list[str]] = {}
    for modality in sorted(ranked_items_by_modality):
        ranked = ranked_items_by_modality[modality]
        positions = select_positions(strategy, len(ranked), budget, rng=rng, band_index=band_index)
        chosen[modality] = [ranked[position] for position in positions]
    return chosen


def interleave_for_display(items_by_modality: dict[str, list[str]], rng: np.random.Generator) -> list[tuple[str, str]]:
    """The order in which annotators see a page's items, as (modality, item_id) pairs.

    A uniform random permutation of all items of all modalities, so that neither the modality
    nor the single-modal rank can be read off an item's place on the page (both would bias the
    grade). Modalities are taken in sorted name order and items in their given order before
    shuffling, so the result depends only on the content and the rng's state.
    """
    pool = [(modality, item_id) for modality in sorted(items_by_modality) for item_id in items_by_modality[modality]]
    order = rng.permutation(len(pool))
    return [pool[index] for index in order]

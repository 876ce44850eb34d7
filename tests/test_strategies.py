"""Budgeted item selection and display interleaving for page-level annotation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smar.annotation.strategies import (
    BUDGET_STRATEGIES,
    interleave_for_display,
    label_count,
    select_items,
    select_positions,
)


@pytest.mark.parametrize(
    ("n_items", "budget", "expected"),
    [
        (10, 0.2, 2),
        (7, 0.2, 1),  # 1.4 rounds down
        (25, 0.1, 3),  # 2.5 rounds half up, not to even
        (5, 0.1, 1),  # 0.5 rounds up
        (3, 0.1, 1),  # 0.3 would be 0: at least one item
        (4, 1.0, 4),
        (0, 0.2, 0),
    ],
)
def test_label_count_rounds_half_up_with_at_least_one(n_items, budget, expected):
    # Given a list length and a budget fraction / When counting / Then p*n rounded half up, >= 1
    assert label_count(n_items, budget) == expected


@pytest.mark.parametrize("budget", [0.0, -0.1, 1.5, float("nan")])
def test_label_count_refuses_budget_outside_unit_interval(budget):
    with pytest.raises(ValueError, match="budget"):
        label_count(10, budget)


@pytest.mark.parametrize("strategy", BUDGET_STRATEGIES)
@pytest.mark.parametrize("n_items", [1, 2, 3, 7, 10, 23, 100])
@pytest.mark.parametrize("budget", [0.05, 0.1, 0.2, 0.3, 0.5])
def test_every_strategy_honours_the_budget(strategy, n_items, budget):
    # Given any list length and budget
    rng = np.random.default_rng(7)
    # When selecting
    positions = select_positions(strategy, n_items, budget, rng=rng)
    # Then the count is p*n within rounding (and >= 1), positions are distinct, sorted, in range
    assert len(positions) >= 1
    assert abs(len(positions) - budget * n_items) <= 0.5 or len(positions) == 1
    assert len(set(positions.tolist())) == len(positions)
    assert positions.tolist() == sorted(positions.tolist())
    assert positions.min() >= 0 and positions.max() < n_items


def test_top_takes_the_head_of_the_list():
    assert select_positions("top", 10, 0.3).tolist() == [0, 1, 2]


def test_slice_takes_the_second_band_by_default():
    # Given 20 items and budget 0.2 (count 4) / Then band 1 covers positions 4..7
    assert select_positions("slice", 20, 0.2).tolist() == [4, 5, 6, 7]
    assert select_positions("slice", 20, 0.2, band_index=2).tolist() == [8, 9, 10, 11]


def test_slice_band_past_the_end_is_clamped_not_wrapped():
    # Given 10 items, count 3, band 3 would start at 9 / Then it is moved back to end at item 9
    assert select_positions("slice", 10, 0.3, band_index=3).tolist() == [7, 8, 9]
    # And a list too short for a second band gives the tail
    assert select_positions("slice", 2, 0.5).tolist() == [1]


def test_stratified_takes_the_centre_of_each_equal_stratum():
    # Given 20 items, count 4: strata [0,5) [5,10) [10,15) [15,20) / Then centres 2, 7, 12, 17
    assert select_positions("stratified", 20, 0.2).tolist() == [2, 7, 12, 17]
    # And every stratum contributes exactly one position
    positions = select_positions("stratified", 103, 0.2)
    count = len(positions)
    for stratum, position in enumerate(positions):
        low, high = math.floor(stratum * 103 / count), math.floor((stratum + 1) * 103 / count)
        assert low <= position < high


def test_random_is_reproducible_and_needs_a_generator():
    first = select_positions("random", 50, 0.2, rng=np.random.default_rng(3))
    again = select_positions("random", 50, 0.2, rng=np.random.default_rng(3))
    other = select_positions("random", 50, 0.2, rng=np.random.default_rng(4))
    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()
    with pytest.raises(ValueError, match="rng"):
        select_positions("random", 50, 0.2)


def test_random_is_roughly_uniform_over_positions():
    # Given many draws / Then each of 10 positions is picked about budget of the time
    rng = np.random.default_rng(11)
    counts = np.zeros(10)
    for _ in range(2000):
        counts[select_positions("random", 10, 0.2, rng=rng)] += 1
    assert np.all(np.abs(counts / 2000 - 0.2) < 0.04)


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy"):
        select_positions("best", 10, 0.2)


def test_select_items_labels_at_least_one_item_per_modality_present():
    # Given a page with one long and two short modalities, and one empty
    ranked = {
        "web": [f"w{i}" for i in range(30)],
        "image": ["i0", "i1"],
        "video": ["v0"],
        "llm": [],
    }
    for strategy in BUDGET_STRATEGIES:
        # When selecting with budget 0.1
        chosen = select_items(strategy, ranked, 0.1, rng=np.random.default_rng(0))
        # Then every non-empty modality has >= 1 item, chosen from its own list, and web has 3
        assert len(chosen["image"]) == 1 and chosen["image"][0] in ranked["image"]
        assert chosen["video"] == ["v0"]
        assert chosen["llm"] == []
        assert len(chosen["web"]) == 3


def _page() -> dict[str, list[str]]:
    return {
        "web": [f"w{i}" for i in range(6)],
        "image": [f"i{i}" for i in range(4)],
        "video": [f"v{i}" for i in range(3)],
    }


def test_interleave_shows_every_item_once_and_is_deterministic_under_a_seed():
    page = _page()
    shown = interleave_for_display(page, np.random.default_rng(42))
    again = interleave_for_display(page, np.random.default_rng(42))
    assert shown == again
    assert sorted(shown) == sorted((m, item) for m, items in page.items() for item in items)
    # And the dict's insertion order does not matter
    reordered = {key: page[key] for key in reversed(list(page))}
    assert interleave_for_display(reordered, np.random.default_rng(42)) == shown


def _modality_runs(shown: list[tuple[str, str]]) -> int:
    return 1 + sum(1 for before, after in zip(shown, shown[1:]) if before[0] != after[0])


def test_interleave_mixes_modalities_and_breaks_rank_order():
    # Given a seeded rng / When interleaving a page of 3 modalities
    page = _page()
    shown = interleave_for_display(page, np.random.default_rng(42))
    # Then modalities are not shown as 3 contiguous groups
    assert _modality_runs(shown) > len(page)
    # And within some modality the single-modal rank order is broken
    broken = []
    for modality, items in page.items():
        order = [items.index(item) for m, item in shown if m == modality]
        broken.append(order != sorted(order))
    assert any(broken)


def test_interleave_is_rarely_grouped_over_many_seeds():
    # Grouped-by-modality output should be as rare as for a uniform shuffle (3!*6!4!3!/13! ~ 1e-4)
    page = _page()
    grouped = sum(
        _modality_runs(interleave_for_display(page, np.random.default_rng(seed))) == len(page) for seed in range(300)
    )
    assert grouped <= 1

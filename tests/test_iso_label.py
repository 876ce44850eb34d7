"""Iso-label anchor search: binary search of grade boundaries along single-modal ranked lists."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smar.annotation.iso_label import IsoLabelSearch, judgement_bound, run_search


def _true_boundary(grades: list[int], g: int) -> int:
    # Number of items with grade >= g: the boundary on a monotone list.
    return sum(1 for grade in grades if grade >= g)


def _random_monotone(rng: np.random.Generator, n_items: int) -> list[int]:
    return sorted(rng.integers(0, 5, size=n_items).tolist(), reverse=True)


def test_first_round_probes_the_shared_midpoint_once():
    # Given a fresh search over 10 web items and 4 boundaries
    search = IsoLabelSearch({"web": 10})
    # When asking for probes / Then all 4 boundaries want position 5, asked once
    assert search.next_probes() == {"web": [5]}


def test_a_hand_worked_search():
    # Given web grades [4,4,3,3,2,1,1,0,0,0] (n=10) and one boundary g=2 (true boundary 5)
    grades = [4, 4, 3, 3, 2, 1, 1, 0, 0, 0]
    search = IsoLabelSearch({"web": 10}, grades=(2,))
    # When: [0,10] -> probe 5 (grade 1 < 2) -> [0,5] -> probe 2 (3 >= 2) -> [3,5]
    #       -> probe 4 (2 >= 2) -> [5,5]
    asked = []
    while not search.is_done():
        positions = search.next_probes()["web"]
        asked.extend(positions)
        for position in positions:
            search.record("web", position, grades[position])
    # Then three judgements at 5, 2, 4 resolve the boundary at 5
    assert asked == [5, 2, 4]
    assert search.boundaries() == {("web", 2): 5}
    # And the anchor is the judged pair either side: position 4 (grade 2), position 5 (grade 1)
    (anchor,) = search.anchors()[2]
    assert (anchor.last_at_or_above, anchor.last_at_or_above_grade) == (4, 2)
    assert (anchor.first_below, anchor.first_below_grade) == (5, 1)


def test_all_above_gives_n_and_all_below_gives_zero():
    # Given a list graded 3 throughout
    result = run_search({"web": [3] * 6})
    # Then boundaries 1..3 are n (nothing drops) and 4 is 0 (everything is below)
    assert [result.boundaries[("web", g)] for g in (1, 2, 3, 4)] == [6, 6, 6, 0]
    anchors_at_4 = result.anchors[4][0]
    assert anchors_at_4.last_at_or_above is None and anchors_at_4.first_below == 0
    anchors_at_1 = result.anchors[1][0]
    assert anchors_at_1.first_below is None and anchors_at_1.last_at_or_above == 5


def test_empty_modality_is_resolved_without_judgements():
    result = run_search({"web": [], "image": [2, 0]})
    assert result.boundaries[("web", 1)] == 0
    assert result.judgements_by_modality["web"] == 0
    assert result.boundaries[("image", 1)] == 1


@pytest.mark.parametrize("n_items", [1, 2, 3, 5, 8, 13, 31, 64, 100, 257])
def test_monotone_lists_resolve_exactly_within_the_log_bound(n_items):
    # Given many random monotone lists of length n
    rng = np.random.default_rng(n_items)
    bound = math.ceil(math.log2(n_items)) + 1
    for _ in range(40):
        lists = {"web": _random_monotone(rng, n_items), "video": _random_monotone(rng, n_items)}
        # When searching all four boundaries
        result = run_search(lists)
        # Then every boundary is exact, each needed <= ceil(log2 n) + 1 of its own probes,
        # all of them judged items, and the labels are never contradictory
        for modality, grades in lists.items():
            for g in (1, 2, 3, 4):
                assert result.boundaries[(modality, g)] == _true_boundary(grades, g)
                assert result.own_probes_by_boundary[(modality, g)] <= bound
                assert result.own_probes_by_boundary[(modality, g)] <= judgement_bound(n_items)
            assert result.judgements_by_modality[modality] <= min(n_items, 4 * bound)
            assert all(grades[p] == grade for p, grade in result.judged[modality].items())
        assert result.inconsistencies == 0
        assert result.completed


@pytest.mark.parametrize("n_items", [1, 2, 7, 16, 50, 200])
def test_one_boundary_costs_at_most_log_judgements_per_modality(n_items):
    # Given one boundary only, every judgement is that boundary's own probe
    rng = np.random.default_rng(1000 + n_items)
    for _ in range(40):
        grades = _random_monotone(rng, n_items)
        for g in (1, 2, 3, 4):
            result = run_search({"web": grades}, grades=(g,))
            assert result.boundaries[("web", g)] == _true_boundary(grades, g)
            assert result.judgements_by_modality["web"] <= math.ceil(math.log2(n_items)) + 1


def test_boundaries_are_nested_and_anchors_have_matching_grades_on_monotone_lists():
    rng = np.random.default_rng(5)
    for _ in range(50):
        lists = {"web": _random_monotone(rng, 20), "image": _random_monotone(rng, 9)}
        result = run_search(lists)
        for modality in lists:
            values = [result.boundaries[(modality, g)] for g in (1, 2, 3, 4)]
            assert values == sorted(values, reverse=True)
        for g, anchors in result.anchors.items():
            for anchor in anchors:
                grades = lists[anchor.modality]
                if anchor.last_at_or_above is not None:
                    assert anchor.last_at_or_above_grade == grades[anchor.last_at_or_above] >= g
                if anchor.first_below is not None:
                    assert anchor.first_below_grade == grades[anchor.first_below] < g


def test_rounds_are_logarithmic_not_linear():
    # Given a long monotone list / Then the number of rounds is about log2 n, not n
    grades = sorted(np.random.default_rng(9).integers(0, 5, size=1000).tolist(), reverse=True)
    result = run_search({"web": grades})
    assert result.rounds <= math.ceil(math.log2(1001)) + 1
    assert result.judgements_by_modality["web"] <= 4 * (math.ceil(math.log2(1000)) + 1)


@pytest.mark.parametrize("n_items", [2, 5, 17, 60])
def test_shuffled_lists_terminate_and_count_inconsistencies(n_items):
    # Given non-monotone (shuffled) grades
    rng = np.random.default_rng(77 + n_items)
    seen_inconsistency = False
    for _ in range(30):
        grades = rng.integers(0, 5, size=n_items).tolist()
        # When searching / Then it ends, within n judgements, with boundaries in 0..n
        result = run_search({"web": grades, "llm": list(reversed(grades))})
        for modality in ("web", "llm"):
            assert result.judgements_by_modality[modality] <= n_items
        assert result.rounds <= 2 * n_items + 1
        assert all(0 <= value <= n_items for value in result.boundaries.values())
        seen_inconsistency |= result.inconsistencies > 0
    # And contradictions with monotonicity were noticed somewhere
    assert seen_inconsistency


def test_an_inconsistent_label_is_counted():
    # Given position 5 judged grade 1, then position 8 judged grade 3 (should be <= 1)
    search = IsoLabelSearch({"web": 10}, grades=(1,))
    search.next_probes()
    search.record("web", 5, 1)
    assert search.inconsistencies == 0
    # When the contradicting label arrives / Then it is counted once; a consistent one is not
    search.record("web", 8, 3)
    assert search.inconsistencies == 1
    search.record("web", 2, 4)  # consistent with both earlier labels
    assert search.inconsistencies == 1


def test_budget_cap_stops_the_search_and_is_shared_round_robin():
    # Given a cap of 3 judgements for two modalities of 100 items
    rng = np.random.default_rng(3)
    lists = {"web": _random_monotone(rng, 100), "image": _random_monotone(rng, 100)}
    result = run_search(lists, max_judgements_per_query=3)
    # Then exactly 3 are used, split 2/1 between modalities, and the search is incomplete
    assert sum(result.judgements_by_modality.values()) == 3
    assert sorted(result.judgements_by_modality.values()) == [1, 2]
    assert not result.completed
    assert any(value is None for value in result.boundaries.values())


def test_record_refuses_bad_input():
    search = IsoLabelSearch({"web": 4}, max_judgements_per_query=1)
    with pytest.raises(ValueError, match="unknown modality"):
        search.record("audio", 0, 1)
    with pytest.raises(ValueError, match="outside"):
        search.record("web", 4, 1)
    with pytest.raises(ValueError, match="grade"):
        search.record("web", 0, 5)
    search.record("web", 2, 1)
    with pytest.raises(ValueError, match="already judged"):
        search.record("web", 2, 1)
    with pytest.raises(ValueError, match="cap"):
        search.record("web", 0, 1)
    assert search.is_done()
    assert search.next_probes() == {}


def test_next_probes_never_repeats_a_judged_position():
    rng = np.random.default_rng(21)
    for _ in range(30):
        grades = rng.integers(0, 5, size=25).tolist()
        search = IsoLabelSearch({"web": 25})
        while not search.is_done():
            probes = search.next_probes().get("web", [])
            assert not set(probes) & set(search.judged()["web"])
            assert len(probes) == len(set(probes))
            for position in probes:
                search.record("web", position, grades[position])


def test_record_accepts_numpy_integers():
    # Given grades held in a numpy array / When recorded / Then they are stored as plain ints
    search = IsoLabelSearch({"web": 3}, grades=(2,))
    search.record("web", np.int64(1), np.int64(3))
    assert search.judged() == {"web": {1: 3}}
    assert type(next(iter(search.judged()["web"].values()))) is int

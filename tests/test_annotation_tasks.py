"""The per-page pure functions behind the annotation jobs, and the simulated annotators: pandas
and numpy only, no engine."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from smar.annotation.iso_label import run_search
from smar.annotation.label_studio import annotations_export, build_task, parse_export
from smar.annotation.simulate import annotator_names, simulate_grades, write_simulated_export
from smar.annotation.tasks import iso_label_page_round, select_page_items
from smar.storage.uris import local_path


def _page(grades_by_modality: dict[str, list[int]], page_id: str = "p1") -> pd.DataFrame:
    """One page's candidates: item `<modality>-<rank>` at rank 1..n, rows deliberately unsorted."""
    rows = [
        {"page_id": page_id, "item_id": f"{modality}-{rank}", "modality": modality,
         "rank_in_modality": rank, "title": f"t{rank}", "body": None}
        for modality, grades in grades_by_modality.items()
        for rank in range(len(grades), 0, -1)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_select_page_items_top_and_full_record_ranks_and_display_positions():
    # Given a page with 10 web and 3 image candidates
    page = _page({"web": [0] * 10, "image": [0] * 3})
    # When top 0.2 and full are selected
    top = select_page_items(page, strategy="top", budget=0.2, seed=1, round_number=0)
    full = select_page_items(page, strategy="full", budget=1.0, seed=1, round_number=0)
    # Then top shows web ranks 1-2 and image rank 1; full shows all 13; positions are 1..n
    assert sorted(zip(top["modality"], top["single_modal_rank"])) == [("image", 1), ("web", 1), ("web", 2)]
    assert len(full) == 13 and set(full["item_id"]) == set(page["item_id"])
    assert list(top["display_position"]) == [1, 2, 3] and list(full["display_position"]) == list(range(1, 14))
    assert top["body"].isna().all() and set(top["title"]) <= {"t1", "t2"}


def test_display_order_depends_on_seed_and_round_only():
    # Given one page shown in full
    page = _page({"web": [0] * 8, "image": [0] * 4, "video": [0] * 3})

    def order(seed, round_number, frame=page):
        return list(
            select_page_items(frame, strategy="full", budget=1.0, seed=seed, round_number=round_number)["item_id"]
        )

    # Then the same (seed, page, round) reproduces the order, even from shuffled input rows
    assert order(5, 0) == order(5, 0, page.sample(frac=1.0, random_state=3))
    # And another round or seed reshuffles it (15! orders: a collision would be a bug)
    assert order(5, 1) != order(5, 0) and order(6, 0) != order(5, 0)


def test_random_strategy_draws_within_budget_and_reproducibly():
    # Given a page of 20 web items, When random 0.25 is drawn twice with the same seed
    page = _page({"web": [0] * 20})
    first = select_page_items(page, strategy="random", budget=0.25, seed=9, round_number=0)
    second = select_page_items(page, strategy="random", budget=0.25, seed=9, round_number=0)
    # Then 5 items are drawn, the same ones, and not simply the head of the list
    assert len(first) == 5 and first.equals(second)
    assert sorted(first["single_modal_rank"]) != [1, 2, 3, 4, 5]


def _run_rounds(grades_by_modality, **options):
    """Drive iso_label_page_round like the job does: labels of round r feed round r + 1."""
    page = _page(grades_by_modality).assign(label_round=None, mean_grade=None)
    truth = {
        f"{m}-{rank}": grades[rank - 1]
        for m, grades in grades_by_modality.items()
        for rank in range(1, len(grades) + 1)
    }
    rounds = 0
    while True:
        state = iso_label_page_round(page, round_number=rounds, seed=0, **options)
        probes = state[state["kind"] == "probe"]
        if probes.empty:
            return state, rounds, page
        chosen = page["item_id"].isin(probes["item_id"])
        page.loc[chosen, "label_round"] = rounds
        page.loc[chosen, "mean_grade"] = page.loc[chosen, "item_id"].map(truth)
        rounds += 1


def test_iso_label_round_replay_matches_the_pure_search():
    # Given monotone grades in two modalities
    grades = {"web": [4, 4, 3, 2, 2, 1, 0, 0, 0], "image": [3, 1, 1, 0]}
    # When the page is driven round by round from its stored labels
    state, rounds, page = _run_rounds(grades)
    expected = run_search(grades)
    # Then it asks the same number of rounds and judgements as the pure search, and its anchors
    # are the true boundaries
    assert rounds == expected.rounds
    assert page["label_round"].notna().sum() == sum(expected.judgements_by_modality.values())
    anchors = state[state["kind"] == "anchor"]
    for row in anchors.to_dict("records"):
        list_grades = grades[row["modality"]]
        assert row["boundary_position"] == sum(g >= row["grade_boundary"] for g in list_grades)
        assert row["boundary_position"] == expected.boundaries[(row["modality"], row["grade_boundary"])]
    page_row = state[state["kind"] == "page"].iloc[0]
    assert page_row["search_done"] and page_row["inconsistencies"] == 0


def test_iso_label_round_respects_the_cap_and_terminates_on_shuffled_grades():
    # Given non-monotone grades and a cap of 5 judgements
    state, rounds, page = _run_rounds({"web": [0, 4, 1, 3, 0, 4, 2, 0], "video": [2, 0, 4]}, max_judgements_per_query=5)
    # Then at most 5 items were ever asked and the page is done
    assert page["label_round"].notna().sum() <= 5 and rounds <= 5
    assert state[state["kind"] == "page"].iloc[0]["search_done"]


def test_iso_label_consensus_rounds_the_mean_half_up():
    # Given one image item whose two annotators said 2 and 3 (mean 2.5), judged in round 0
    page = _page({"image": [0]}).assign(label_round=0, mean_grade=2.5)
    # When round 1 replays it
    state = iso_label_page_round(page, round_number=1, seed=0)
    anchors = state[state["kind"] == "anchor"].set_index(["grade_boundary", "side"])
    # Then it counts as grade 3: above boundary 3, below boundary 4
    assert anchors.loc[(3, "above"), "judged_grade"] == 3 and anchors.loc[(3, "above"), "item_id"] == "image-1"
    assert anchors.loc[(4, "below"), "item_id"] == "image-1"


# -- simulated annotators -------------------------------------------------------------------------------
TASKS = [
    build_task("t1", "p1", "q1", "query one", [{"item_id": f"i{k}", "modality": "web"} for k in range(30)]),
    build_task(
        "t2", "p2", "q2", "query two", [{"item_id": "i0", "modality": "image"}, {"item_id": "a1", "modality": "answer"}]
    ),
]
TRUTH = {**{("q1", f"i{k}"): k % 5 for k in range(30)}, ("q2", "i0"): 0, ("q2", "a1"): 4}


def test_noiseless_annotators_return_the_truth_and_the_export_parses_back():
    # Given no noise, When two annotators grade and their export is parsed
    simulated = simulate_grades(TASKS, TRUTH, n_annotators=2, seed=1)
    rows, rejected = parse_export(json.dumps(annotations_export(TASKS, simulated.grades)))
    # Then every (task, item, annotator) carries the true grade, and nothing is refused
    assert not rejected and len(rows) == 2 * 32 == len(simulated.grades)
    query_of = {"t1": "q1", "t2": "q2"}
    assert all(row.grade == TRUTH[(query_of[row.task_id], row.item_id)] for row in rows)
    assert (simulated.noisy_items, simulated.disagreements) == (0, 0)


def test_noise_moves_every_grade_one_step_and_disagreement_separates_annotators():
    # Given noise = 1: every perceived grade is one step off, shared by both annotators
    noisy = simulate_grades(TASKS, TRUTH, n_annotators=2, noise=1.0, seed=2)
    for (task_id, item_id, _annotator), grade in noisy.grades.items():
        assert abs(grade - TRUTH[({"t1": "q1", "t2": "q2"}[task_id], item_id)]) == 1 and 0 <= grade <= 4
    first, second = annotator_names(2)
    assert all(noisy.grades[(t, i, first)] == noisy.grades[(t, i, second)] for (t, i, _) in noisy.grades)
    # Given disagreement = 1 and 3 annotators: the first keeps the truth, the others move one step
    split = simulate_grades(TASKS, TRUTH, n_annotators=3, disagreement=1.0, seed=2)
    names = annotator_names(3)
    for (task_id, item_id, annotator), grade in split.grades.items():
        true_grade = TRUTH[({"t1": "q1", "t2": "q2"}[task_id], item_id)]
        assert abs(grade - true_grade) == (0 if annotator == names[0] else 1)
    assert split.disagreements == 2 * 32


def test_simulation_is_seeded_and_refuses_items_without_truth(tmp_path):
    # Given half-noisy annotators, Then the same seed gives the same grades and another seed not
    def grades(seed):
        return simulate_grades(TASKS, TRUTH, noise=0.5, disagreement=0.5, seed=seed).grades

    assert grades(3) == grades(3) and grades(3) != grades(4)
    # And the export file is what Label Studio would write
    path = write_simulated_export(TASKS, simulate_grades(TASKS, TRUTH, seed=3), tmp_path / "out" / "export.json")
    export = json.loads(local_path(path).read_text())
    assert [task["data"]["task_id"] for task in export] == ["t1", "t2"]
    assert export[1]["annotations"][0]["completed_by"]["email"] == annotator_names(1)[0]
    # And an item the truth does not know is an error naming it
    with pytest.raises(ValueError, match=r"no true grade.*'q2', 'a1'"):
        simulate_grades(TASKS, {key: value for key, value in TRUTH.items() if key != ("q2", "a1")})


def test_the_cli_has_the_annotation_commands():
    # Given the smar command line
    from smar.cli import app

    # Then every command of the issue is there
    names = {command.name for command in app.registered_commands}
    assert {"build-tasks", "export-tasks", "import-labels", "simulate-annotators", "iso-label-round",
            "annotation-cost", "annotation-round-trip"} <= names  # fmt: skip

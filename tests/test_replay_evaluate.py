"""Replay metrics per query (smar.replay.per_query) on a hand-made log, against the NumPy reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smar.metrics import cross_modal_pair_counts, modality_exposure_share, ndcg_at, per_modality_ndcg
from smar.replay.inputs import NamedRanking, build_replay_inputs, ranking_name
from smar.replay.measures import MetricConfig
from smar.replay.per_query import cross_modal_pairs_by_query, exposure_by_query, ndcg_by_query
from smar.splits import SPLITS

DS = "2026-11-01"
# Pages: (request_id, query_id, [(item_id, modality, grade, clicked), ...] in logged order).
PAGES = [
    ("r1", "qa", [("w1", "web", 3, 1), ("i1", "image", 4, 0), ("w2", "web", 0, 0), ("v1", "video", 2, 1),
                  ("i2", "image", 1, 0), ("w3", "web", 2, 0)]),
    ("r2", "qa", [("i1", "image", 4, 1), ("w1", "web", 3, 0), ("v1", "video", 2, 0), ("w3", "web", 2, 1),
                  ("w2", "web", 0, 0), ("i2", "image", 1, 0)]),
    ("r3", "qb", [("w4", "web", 1, 0), ("a1", "answer", 4, 1), ("w5", "web", 2, 0), ("i3", "image", 0, 0),
                  ("v2", "video", 3, 0)]),
    # every grade 0: NDCG is undefined on this page (left out), exposure still counts
    ("r4", "qc", [("w6", "web", 0, 0), ("w7", "web", 0, 1), ("i4", "image", 0, 0), ("v3", "video", 0, 0)]),
]  # fmt: skip
# Candidate scores per (request, item); r1 has a tie (w2, i2) broken by item id descending.
CANDIDATE_SCORES = {
    ("r1", "w1"): 0.2, ("r1", "i1"): 0.9, ("r1", "w2"): 0.5, ("r1", "v1"): 0.7, ("r1", "i2"): 0.5, ("r1", "w3"): 0.6,
    ("r2", "i1"): 0.9, ("r2", "w1"): 0.8, ("r2", "v1"): 0.1, ("r2", "w3"): 0.4, ("r2", "w2"): 0.3, ("r2", "i2"): 0.2,
    ("r3", "w4"): 0.1, ("r3", "a1"): 0.3, ("r3", "w5"): 0.2, ("r3", "i3"): 0.9, ("r3", "v2"): 0.8,
    ("r4", "w6"): 0.1, ("r4", "w7"): 0.2, ("r4", "i4"): 0.3, ("r4", "v3"): 0.4,
}  # fmt: skip
CONFIG = MetricConfig(query_splits=SPLITS, cutoffs=(1, 3), per_modality_k=2, exposure_k=3, click_cutoffs=(2,))


def impressions_frame(logging_propensity: float | None = None) -> pd.DataFrame:
    rows = []
    for request_id, query_id, items in PAGES:
        for position, (item_id, modality, grade, clicked) in enumerate(items, start=1):
            rows.append({"ds": DS, "request_id": request_id, "query_id": query_id, "query_text": query_id,
                         "item_id": item_id, "modality": modality, "position": position, "clicked": clicked,
                         "grade": grade, "logging_propensity": logging_propensity, "source": "test",
                         "candidate_score": CANDIDATE_SCORES[(request_id, item_id)]})  # fmt: skip
    return pd.DataFrame(rows)


def write_log(spark, lake, frame: pd.DataFrame) -> None:
    logs = frame.drop(columns=["grade", "candidate_score"]).astype({"logging_propensity": "float64"})
    lake.overwrite_slice(spark.createDataFrame(logs), "bronze.search_logs", {"ds": DS})
    truth = frame[["ds", "query_id", "item_id", "modality", "grade"]].drop_duplicates()
    lake.overwrite_slice(spark.createDataFrame(truth), "truth.relevance", {"ds": DS})


def candidate_ranking(spark, frame: pd.DataFrame) -> NamedRanking:
    scores = frame[["ds", "request_id", "query_id", "item_id", "modality", "position", "candidate_score"]]
    return NamedRanking("hand_made", spark.createDataFrame(scores.rename(columns={"candidate_score": "score"})))


@pytest.fixture()
def replay_inputs(spark, lake):
    frame = impressions_frame()
    write_log(spark, lake, frame)
    inputs = build_replay_inputs(
        spark, lake, control="production", candidate=candidate_ranking(spark, frame),
        ds_start=DS, ds_end=DS, config=CONFIG,
    )  # fmt: skip
    return frame, inputs


def reference_by_query(frame: pd.DataFrame, per_page) -> dict[str, list]:
    """{query: [per-page values]} of a NumPy reference function over both arms' scores."""
    values: dict[str, list] = {}
    for (query_id, _), page in frame.groupby(["query_id", "request_id"]):
        arms = {"control": -page["position"].to_numpy(float), "candidate": page["candidate_score"].to_numpy(float)}
        values.setdefault(query_id, []).append({arm: per_page(page, scores) for arm, scores in arms.items()})
    return values


def test_scope_counts_and_label_sources(replay_inputs) -> None:
    frame, inputs = replay_inputs
    assert inputs.n_pages == 4 and inputs.n_queries == 3
    assert inputs.label_sources == ("oracle",)  # no silver.page_labels table here
    assert inputs.modalities == ("answer", "image", "video", "web")
    # the candidate's tie (w2 and i2 at 0.5 on r1) is broken by item id descending: w2 first
    r1 = inputs.impressions.query("request_id == 'r1'").set_index("item_id")
    assert r1.loc["w2", "candidate_rank"] < r1.loc["i2", "candidate_rank"]
    assert r1["control_rank"].to_dict() == frame.query("request_id == 'r1'").set_index("item_id")["position"].to_dict()


def test_page_ndcg_matches_the_numpy_reference(replay_inputs) -> None:
    frame, inputs = replay_inputs
    rows = ndcg_by_query(inputs, CONFIG)
    for k in CONFIG.cutoffs:
        reference = reference_by_query(
            frame,
            lambda page, scores, k=k: ndcg_at(
                page["grade"],
                scores,
                k=k,
                doc_ids=page["item_id"].tolist(),
                gain="exponential",
                ties="doc_id_desc",
                empty=None,
            ),  # fmt: skip
        )
        got = rows[(rows["segment"] == "all") & (rows["k"] == k)].set_index("query_id")
        # qc has nothing relevant: it is left out rather than scored 0 or 1
        assert set(got.index) == {"qa", "qb"}
        for query_id in ("qa", "qb"):
            for arm in ("control", "candidate"):
                expected = np.mean([page[arm] for page in reference[query_id]])
                assert got.loc[query_id, f"{arm}_numerator"] == pytest.approx(expected), (k, query_id, arm)


def test_per_modality_ndcg_matches_the_numpy_reference(replay_inputs) -> None:
    frame, inputs = replay_inputs
    rows = ndcg_by_query(inputs, CONFIG)
    reference = reference_by_query(
        frame,
        lambda page, scores: per_modality_ndcg(
            page["grade"],
            scores,
            page["modality"],
            k=CONFIG.per_modality_k,
            doc_ids=page["item_id"].tolist(),
            gain="exponential",
            empty=None,
        ),  # fmt: skip
    )
    modality_rows = rows[rows["segment"] != "all"]
    assert set(modality_rows["k"]) == {CONFIG.per_modality_k}
    checked = 0
    for _, row in modality_rows.iterrows():
        for arm in ("control", "candidate"):
            pages = [page[arm].get(row["segment"], np.nan) for page in reference[row["query_id"]]]
            assert row[f"{arm}_numerator"] == pytest.approx(np.nanmean(pages)), (row["query_id"], row["segment"], arm)
            checked += 1
    # qa: web, image, video (r1 and r2); qb: web, video (answer and image have one item with grade 4 / 0)
    assert checked >= 10


def test_cross_modal_pairs_match_the_numpy_reference(replay_inputs) -> None:
    frame, inputs = replay_inputs
    rows = cross_modal_pairs_by_query(inputs)
    pnr = rows[rows["metric"] == "cross_modal_pnr"].set_index("query_id")
    for query_id, pages in reference_by_query(
        frame, lambda page, scores: cross_modal_pair_counts(page["grade"], scores, page["modality"])
    ).items():
        if query_id == "qc":
            assert query_id not in pnr.index  # no pair with different grades
            continue
        for arm in ("control", "candidate"):
            correct = np.mean([page[arm].concordant + page[arm].tied / 2 for page in pages])
            wrong = np.mean([page[arm].discordant + page[arm].tied / 2 for page in pages])
            assert pnr.loc[query_id, f"{arm}_numerator"] == pytest.approx(correct)
            assert pnr.loc[query_id, f"{arm}_denominator"] == pytest.approx(wrong)
    accuracy = rows[rows["metric"] == "cross_modal_pair_accuracy"].set_index("query_id")
    for arm in ("control", "candidate"):
        assert (accuracy[f"{arm}_numerator"] <= accuracy[f"{arm}_denominator"]).all()


def test_exposure_and_position_shares_match_the_numpy_reference(replay_inputs) -> None:
    frame, inputs = replay_inputs
    rows = exposure_by_query(inputs, CONFIG)
    exposure = rows[rows["metric"] == "exposure_share"]
    reference = reference_by_query(
        frame,
        lambda page, scores: modality_exposure_share(
            scores, page["modality"], k=CONFIG.exposure_k, doc_ids=page["item_id"].tolist()
        ),  # fmt: skip
    )
    for _, row in exposure.iterrows():
        for arm in ("control", "candidate"):
            # a modality absent from a page has share 0 there
            expected = np.mean([page[arm].get(row["segment"], 0.0) for page in reference[row["query_id"]]])
            assert row[f"{arm}_numerator"] == pytest.approx(expected), (row["query_id"], row["segment"], arm)
    # Shares at one position sum to 1 over modalities; control's position 1 on qb is the web item w4
    positions = rows[rows["metric"] == "position_share"]
    assert positions.groupby(["query_id", "k"])["control_numerator"].sum().to_numpy() == pytest.approx(1.0)
    at_top = positions[(positions["query_id"] == "qb") & (positions["k"] == 1)].set_index("segment")
    assert at_top.loc["web", "control_numerator"] == 1.0
    assert at_top.loc["image", "candidate_numerator"] == 1.0  # candidate puts i3 (0.9) first


def test_unscored_pages_are_counted_then_refused_above_the_limit(spark, lake) -> None:
    # Given a candidate that does not score one impression of r3
    frame = impressions_frame()
    write_log(spark, lake, frame)
    partial = candidate_ranking(spark, frame.query("not (request_id == 'r3' and item_id == 'w4')"))
    # When the tolerated fraction is 0.3, r3 is dropped and counted; at the default 1% it is refused
    tolerant = MetricConfig(**{**CONFIG.model_dump(), "max_unscored_page_fraction": 0.3})
    inputs = build_replay_inputs(spark, lake, control="production", candidate=partial, ds_start=DS, ds_end=DS,
                                 config=tolerant)  # fmt: skip
    assert inputs.dropped_pages == 1 and inputs.n_pages == 3
    with pytest.raises(ValueError, match="1 of 4 pages"):
        build_replay_inputs(spark, lake, control="production", candidate=partial, ds_start=DS, ds_end=DS, config=CONFIG)


def test_ranking_sources_are_validated(spark, lake) -> None:
    frame = impressions_frame()
    write_log(spark, lake, frame)
    assert ranking_name("production") == "production"
    assert ranking_name("run:abc") == "run:abc"
    with pytest.raises(ValueError, match="unknown ranking source"):
        ranking_name("bogus")
    duplicated = candidate_ranking(spark, pd.concat([frame, frame.head(1)]))
    with pytest.raises(ValueError, match="one score per impression"):
        build_replay_inputs(spark, lake, control="production", candidate=duplicated, ds_start=DS, ds_end=DS,
                            config=CONFIG)  # fmt: skip
    no_score = NamedRanking("bad", candidate_ranking(spark, frame).frame.drop("score"))
    with pytest.raises(ValueError, match="missing"):
        build_replay_inputs(spark, lake, control="production", candidate=no_score, ds_start=DS, ds_end=DS,
                            config=CONFIG)  # fmt: skip


def test_default_scope_is_the_held_out_split(spark, lake) -> None:
    # Given the hand-made log: qb is a held-out (test) query, qa and qc are not
    from smar.splits import query_split

    assert [query_split(query) for query in ("qa", "qb", "qc")] == ["single_modal_train", "test", "single_modal_train"]
    write_log(spark, lake, impressions_frame())
    # When replayed with the default scope
    inputs = build_replay_inputs(spark, lake, control="production", candidate="production", ds_start=DS, ds_end=DS,
                                 config=MetricConfig())  # fmt: skip
    # Then only qb's page is replayed
    assert set(inputs.impressions["query_id"]) == {"qb"} and inputs.n_pages == 1


@pytest.fixture()
def reranker_calls(spark, lake, monkeypatch) -> list[tuple]:
    """The day's log written, and a stand-in for smar.reranker.inference (the real one loads torch
    and a model artifact) that scores with CANDIDATE_SCORES and records each call's arguments."""
    import sys
    import types

    frame = impressions_frame()
    write_log(spark, lake, frame)
    calls: list[tuple] = []

    def score_logged_pages(spark_session, lakehouse, run_id, ds_start, ds_end, *, query_splits=("test",),
                           query_ids=None):  # fmt: skip
        calls.append((run_id, ds_start, ds_end, query_splits, query_ids))
        return candidate_ranking(spark_session, frame).frame

    fake = types.ModuleType("smar.reranker.inference")
    fake.score_logged_pages = score_logged_pages  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "smar.reranker.inference", fake)
    return calls


def test_a_registered_run_is_scored_by_the_reranker_lazily(spark, lake, reranker_calls) -> None:
    # When the candidate is "run:<id>"
    inputs = build_replay_inputs(spark, lake, control="production", candidate="run:smar-42", ds_start=DS, ds_end=DS,
                                 config=CONFIG)  # fmt: skip
    # Then the reranker was asked for exactly the replay's days and splits (every query: the scope
    # is below SMAR_MAX_REPLAY_QUERIES), and its scores are used
    assert reranker_calls == [("smar-42", DS, DS, SPLITS, None)]
    scored = inputs.impressions.set_index(["request_id", "item_id"])["candidate_score"]
    assert scored.to_dict() == CANDIDATE_SCORES


def test_over_the_query_cap_a_run_scores_only_the_sampled_queries(spark, lake, reranker_calls) -> None:
    # Given the three queries qa, qb, qc and a replay cap of 2
    from smar.lake import Lakehouse
    from smar.sampling import sample_key

    capped = Lakehouse(spark, lake.settings.model_copy(update={"max_replay_queries": 2}))
    # When the run is replayed
    inputs = build_replay_inputs(spark, capped, control="production", candidate="run:smar-42", ds_start=DS,
                                 ds_end=DS, config=CONFIG)  # fmt: skip
    # Then the two queries with the smallest sample keys are the only ones scored and replayed
    expected = sorted(sorted(["qa", "qb", "qc"], key=sample_key)[:2])
    assert reranker_calls == [("smar-42", DS, DS, SPLITS, expected)]
    assert sorted(inputs.impressions["query_id"].unique()) == expected
    assert inputs.sampled_queries == 2 and inputs.scope_queries == 3 and inputs.n_queries == 2


def test_page_labels_use_the_consensus_grade_on_condensed_lists(spark, lake) -> None:
    # Given qa's items w1, i1 and v1 labelled by two annotators (w1: 1 and 4 -> consensus 2.5), the rest unlabelled
    frame = impressions_frame()
    write_log(spark, lake, frame)
    labels = pd.DataFrame(
        [(DS, f"t-{annotator}", "page-qa", "qa", item, modality, annotator, grade)
         for item, modality, grades in (("w1", "web", (1, 4)), ("i1", "image", (0, 0)), ("v1", "video", (3, 3)))
         for annotator, grade in zip(("ann-1", "ann-2"), grades)],
        columns=["ds", "task_id", "page_id", "query_id", "item_id", "modality", "annotator", "grade"],
    )  # fmt: skip
    lake.overwrite_slice(spark.createDataFrame(labels), "silver.page_labels", {"ds": DS})
    inputs = build_replay_inputs(spark, lake, control="production", candidate=candidate_ranking(spark, frame),
                                 ds_start=DS, ds_end=DS, config=CONFIG)  # fmt: skip
    assert inputs.label_sources == ("page_labels", "oracle")
    graded = inputs.impressions.dropna(subset=["page_label_grade"])
    assert graded.groupby("item_id")["page_label_grade"].first().to_dict() == {"w1": 2.5, "i1": 0.0, "v1": 3.0}
    # When NDCG@3 is computed against page labels, Then only the labelled items are ranked (condensed list)
    rows = ndcg_by_query(inputs, CONFIG)
    got = rows[(rows["label_source"] == "page_labels") & (rows["segment"] == "all") & (rows["k"] == 3)]
    assert got["query_id"].tolist() == ["qa"]  # qb and qc have no page labels
    expected = {}
    for arm, column in (("control", "position"), ("candidate", "candidate_score")):
        pages = []
        for _, page in frame[frame["item_id"].isin(["w1", "i1", "v1"])].groupby("request_id"):
            scores = -page[column].to_numpy(float) if arm == "control" else page[column].to_numpy(float)
            grades = page["item_id"].map({"w1": 2.5, "i1": 0.0, "v1": 3.0}).to_numpy(float)
            pages.append(ndcg_at(grades, scores, k=3, doc_ids=page["item_id"].tolist(), gain="exponential"))
        expected[arm] = np.mean(pages)
    assert got.iloc[0]["control_numerator"] == pytest.approx(expected["control"])
    assert got.iloc[0]["candidate_numerator"] == pytest.approx(expected["candidate"])
    assert expected["control"] != pytest.approx(expected["candidate"])  # the check can tell the arms apart

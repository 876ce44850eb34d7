"""Spark per-query metrics against the NumPy reference, and against trec_eval's golden outputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smar.metrics import (
    average_precision,
    mean_over_queries,
    ndcg_at,
    precision_at,
    recall_at,
    reciprocal_rank,
)
from smar.metrics.spark_metrics import mean_metrics, ranking_metrics_by_query
from smar.metrics.trec_files import read_qrels, read_run

SCHEMA = "query_id string, doc_id string, score double, relevance int"
CUTOFFS = (1, 3, 5)


def random_judged_run(seed: int) -> list[tuple[str, str, float | None, int | None]]:
    """Rows (query, doc, score, grade): ties in score, judged-not-retrieved (score None),
    retrieved-unjudged (grade None), and one query whose documents are all grade 0."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, float | None, int | None]] = []
    for query in range(8):
        for doc in range(int(rng.integers(1, 12))):
            score = None if rng.random() < 0.15 else float(rng.integers(0, 5)) / 4  # coarse: ties
            grade = None if (score is not None and rng.random() < 0.15) else int(rng.integers(0, 5))
            if query == 0:
                grade = 0
            rows.append((f"q{query}", f"d{doc:02d}x{int(rng.integers(0, 3))}", score, grade))
    return rows


def reference(rows: list[tuple[str, str, float | None, int | None]], *, gain: str, empty: float | None) -> pd.DataFrame:
    """The NumPy reference, per query, with the same input semantics."""
    frame = pd.DataFrame(rows, columns=["query_id", "doc_id", "score", "relevance"])
    result = {}
    for query_id, group in frame.groupby("query_id"):
        retrieved = group[group["score"].notna()]
        grades = retrieved["relevance"].fillna(-1).to_numpy(float)
        scores = retrieved["score"].to_numpy(float)
        common = {
            "doc_ids": retrieved["doc_id"].tolist(),
            "ties": "doc_id_desc",
            "empty": empty,
            "judged_relevance": group["relevance"].dropna().to_numpy(float),
        }
        values = {
            "ndcg": ndcg_at(grades, scores, gain=gain, **common),
            "map": average_precision(grades, scores, **common),
            "recip_rank": reciprocal_rank(grades, scores, **common),
        }
        for k in CUTOFFS:
            values[f"ndcg_cut_{k}"] = ndcg_at(grades, scores, k=k, gain=gain, **common)
            values[f"P_{k}"] = precision_at(grades, scores, k=k, **common)
            values[f"recall_{k}"] = recall_at(grades, scores, k=k, **common)
            values[f"recip_rank_cut_{k}"] = reciprocal_rank(grades, scores, k=k, **common)
        result[query_id] = values
    return pd.DataFrame.from_dict(result, orient="index")


def assert_frames_close(spark_frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    ours = spark_frame.set_index("query_id").sort_index()
    assert list(ours.index) == list(expected.index)
    for column in expected.columns:
        got = ours[column].astype(float).to_numpy()
        want = expected[column].to_numpy(float)
        # null (Spark) and NaN (NumPy) both mean "empty query, left out"
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=column)
        np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], atol=1e-12, err_msg=column)


@pytest.mark.parametrize("gain", ["linear", "exponential"])
def test_spark_matches_numpy_reference(spark, gain: str) -> None:
    # Given a table with ties, unjudged and unretrieved documents, and an empty query
    rows = random_judged_run(seed=42)
    frame = spark.createDataFrame(rows, SCHEMA)
    # When metrics are computed by Spark
    result = ranking_metrics_by_query(frame, cutoffs=CUTOFFS, gain=gain).toPandas()  # type: ignore[arg-type]
    # Then every query and metric equals the NumPy reference
    expected = reference(rows, gain=gain, empty=None)
    assert expected.isna().any().any(), "fixture should contain an empty query"
    assert_frames_close(result, expected)


def test_spark_empty_value_and_means(spark) -> None:
    rows = random_judged_run(seed=7)
    frame = spark.createDataFrame(rows, SCHEMA)
    # Given empty=0.0, the empty query scores 0 like the reference
    per_query = ranking_metrics_by_query(frame, cutoffs=(3,), empty=0.0)
    expected = reference(rows, gain="linear", empty=0.0)
    columns = ["ndcg", "map", "recip_rank", "ndcg_cut_3", "P_3", "recall_3", "recip_rank_cut_3"]
    assert_frames_close(per_query.toPandas(), expected[columns])
    # And with empty=None the mean leaves the empty query out, as mean_over_queries does
    means = mean_metrics(ranking_metrics_by_query(frame, cutoffs=(3,))).toPandas().iloc[0]
    reference_none = reference(rows, gain="linear", empty=None)
    assert means["ndcg_cut_3"] == pytest.approx(mean_over_queries(reference_none["ndcg_cut_3"].to_numpy()))
    assert means["num_q"] == reference_none.shape[0]


def test_spark_refuses_bad_arguments(spark) -> None:
    frame = spark.createDataFrame([("q", "d", 1.0, 1)], SCHEMA)
    with pytest.raises(ValueError, match="cutoffs"):
        ranking_metrics_by_query(frame, cutoffs=(0,))
    with pytest.raises(ValueError, match="lacks columns"):
        ranking_metrics_by_query(frame.drop("score"))
    with pytest.raises(ValueError, match="gain"):
        ranking_metrics_by_query(frame, gain="cubic")  # type: ignore[arg-type]


def test_spark_reproduces_trec_eval_golden(spark, sample_data: Path) -> None:
    # Given trec_eval's sample qrels and run, joined so that unretrieved judged docs have no score
    directory = sample_data / "trec_eval"
    qrels = read_qrels(directory / "qrels.test").frame
    run = read_run(directory / "results.test").frame
    joined = run.merge(qrels, on=["query_id", "doc_id"], how="outer")
    joined = joined[joined["query_id"].isin(set(run["query_id"]))]
    rows = [
        (
            row.query_id,
            row.doc_id,
            None if math.isnan(row.score) else row.score,
            None if math.isnan(row.relevance) else int(row.relevance),
        )
        for row in joined.itertuples()
    ]
    per_query = ranking_metrics_by_query(spark.createDataFrame(rows, SCHEMA), cutoffs=(5, 10, 20))
    overall = mean_metrics(per_query).toPandas().iloc[0]
    ours = per_query.toPandas().set_index("query_id")
    golden = {}
    for line in (directory / "out.test.aq").read_text().splitlines():
        measure, query_id, value = line.split()
        golden[(measure, query_id)] = value
    # Then per query and overall agree with trec_eval within its printed precision
    for measure in ("ndcg", "ndcg_cut_5", "ndcg_cut_10", "ndcg_cut_20", "map", "recip_rank", "P_5", "P_10"):
        for query_id in ("301", "302", "303"):
            assert ours.loc[query_id, measure] == pytest.approx(float(golden[(measure, query_id)]), abs=1e-4)
        assert overall[measure] == pytest.approx(float(golden[(measure, "all")]), abs=1e-4)


@pytest.mark.classic
@pytest.mark.slow
def test_classic_spark_gives_the_same_result() -> None:
    # Given the same rows on classic local Spark (JVM, in a child process: see test_engine_parity),
    # then the metrics equal the reference
    from tests.test_engine_parity import _run_classic

    rows = random_judged_run(seed=42)
    records = _run_classic(f"""
        from smar.metrics.spark_metrics import ranking_metrics_by_query
        frame = spark.createDataFrame({rows!r}, {SCHEMA!r})
        result = ranking_metrics_by_query(frame, cutoffs={CUTOFFS!r}).toPandas().to_dict(orient="records")
    """)
    assert_frames_close(pd.DataFrame(records), reference(rows, gain="linear", empty=None))


def test_nan_relevance_counts_as_unjudged(spark) -> None:
    # Given a pandas-made table where a missing grade arrives as NaN rather than null
    frame = spark.createDataFrame(
        [("q", "a", 0.9, float("nan")), ("q", "b", 0.5, 1.0)],
        "query_id string, doc_id string, score double, relevance double",
    )
    row = ranking_metrics_by_query(frame, cutoffs=(1,)).toPandas().iloc[0]
    # Then the NaN document is simply not relevant: the relevant one sits at rank 2
    assert row["recip_rank"] == pytest.approx(0.5)
    assert row["ndcg"] == pytest.approx(1 / math.log2(3))

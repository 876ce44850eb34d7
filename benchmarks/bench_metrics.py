"""Benchmark: NDCG@10 over a big judged run: Spark-native vs the NumPy reference, with ranx as a peer.

All three score the same rows: `--rows` (query, doc, score, grade) rows, `--docs-per-query` docs
per query, grades 0-4 and distinct random scores, from a fixed seed. Conventions are the same
everywhere: linear gain, discount 1/log2(rank + 1), ideal over the query's judged docs, ties by
doc id descending (no ties occur: the scores are distinct floats).

* Spark: `smar.metrics.spark_metrics.ranking_metrics_by_query(cutoffs=(10,))` on the embedded
  engine, reading the rows from Parquet, then the mean over queries (one action, timed).
* NumPy reference: `smar.metrics.ndcg_at` per query in a Python loop over the same arrays.
* NumPy vectorised (context): the same formula as whole-array sorts and segment sums.
* ranx (`evaluate(qrels, run, "ndcg@10")`, numba, Jarvelin linear gain): timed after a JIT
  warm-up; building its Qrels/Run from pandas is timed separately.

The goal is Spark within 2x of the NumPy reference. Prints one RESULT line and appends it to
benchmarks/results/metrics.jsonl.

    .venv/bin/python benchmarks/bench_metrics.py [--rows 10000000] [--docs-per-query 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _results import record_result  # benchmarks/ is on sys.path when run as a script

os.environ.setdefault("RUST_LOG", "error")

from pyspark.sql import functions as F

from smar.engine import spark_session
from smar.metrics import mean_over_queries, ndcg_at
from smar.metrics.spark_metrics import ranking_metrics_by_query

SEED = 20251016
K = 10


def judged_run(rows: int, docs_per_query: int, seed: int) -> pa.Table:
    """(query_id, doc_id, score, relevance), grouped by query; grades skewed towards 0 as in real qrels."""
    queries = rows // docs_per_query
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "query_id": np.repeat(np.arange(queries, dtype=np.int64), docs_per_query),
            "doc_id": np.tile(np.arange(docs_per_query, dtype=np.int64), queries),
            "score": rng.random(queries * docs_per_query),
            "relevance": rng.choice(5, size=queries * docs_per_query, p=[0.5, 0.2, 0.15, 0.1, 0.05]).astype(np.int32),
        }
    )


def numpy_reference(table: pa.Table, docs_per_query: int) -> tuple[float, float]:
    """(seconds, mean NDCG@10) of the reference `ndcg_at` applied query by query."""
    grades = table.column("relevance").to_numpy().astype(np.float64)
    scores = table.column("score").to_numpy()
    doc_ids = table.column("doc_id").to_numpy()
    started = time.perf_counter()
    values = [
        ndcg_at(grades[start : start + docs_per_query], scores[start : start + docs_per_query], k=K,
                doc_ids=doc_ids[start : start + docs_per_query], gain="linear", ties="doc_id_desc", empty=None)
        for start in range(0, len(grades), docs_per_query)
    ]  # fmt: skip
    mean = mean_over_queries(values)
    return time.perf_counter() - started, mean


def numpy_vectorised(table: pa.Table) -> tuple[float, float]:
    """(seconds, mean NDCG@10) of a whole-array NumPy NDCG@10 (sorts and segment sums, no Python loop).

    Context only: what one machine does without a per-query loop. Same conventions as above.
    """
    query = table.column("query_id").to_numpy()
    doc = table.column("doc_id").to_numpy()
    score = table.column("score").to_numpy()
    gain = table.column("relevance").to_numpy().astype(np.float64)
    started = time.perf_counter()
    starts = np.flatnonzero(np.r_[True, query[1:] != query[:-1]])  # rows arrive grouped by query
    sizes = np.diff(np.r_[starts, len(query)])
    rank = np.arange(len(query)) - np.repeat(starts, sizes) + 1

    def dcg(order: np.ndarray) -> np.ndarray:
        # after sorting within each query, row i holds rank `rank[i]`
        discounted = np.where(rank <= K, gain[order] / np.log2(rank + 1.0), 0.0)
        return np.add.reduceat(discounted, starts)

    by_score = np.lexsort((-doc, -score, query))
    by_gain = np.lexsort((-doc, -gain, query))
    ideal = dcg(by_gain)
    values = np.where(ideal > 0, dcg(by_score) / np.where(ideal > 0, ideal, 1.0), np.nan)
    mean = mean_over_queries(values)
    return time.perf_counter() - started, mean


def spark_native(spark, path: Path) -> tuple[float, float, int]:
    """(seconds, mean NDCG@10, queries) of the Spark-native per-query metrics on the Parquet rows."""
    started = time.perf_counter()
    frame = spark.read.parquet(str(path))
    per_query = ranking_metrics_by_query(frame, cutoffs=(K,), gain="linear", empty=None)
    row = per_query.agg(F.avg(f"ndcg_cut_{K}").alias("mean"), F.count(F.lit(1)).alias("queries")).collect()[0]
    return time.perf_counter() - started, float(row["mean"]), int(row["queries"])


def ranx_peer(table: pa.Table) -> tuple[float, float, float]:
    """(build seconds, evaluate seconds, mean NDCG@10) with ranx, after a JIT warm-up on 2 queries."""
    from ranx import Qrels, Run, evaluate

    frame = table.to_pandas()
    frame["query_id"] = frame["query_id"].astype(str)
    frame["doc_id"] = frame["doc_id"].astype(str)
    frame["relevance"] = frame["relevance"].astype(np.int64)  # ranx wants int64 grades
    warm = frame[frame["query_id"].isin(["0", "1"])]
    evaluate(Qrels.from_df(warm, "query_id", "doc_id", "relevance"), Run.from_df(warm, "query_id", "doc_id", "score"),
             f"ndcg@{K}")  # fmt: skip
    started = time.perf_counter()
    qrels = Qrels.from_df(frame, "query_id", "doc_id", "relevance")
    run = Run.from_df(frame, "query_id", "doc_id", "score")
    built = time.perf_counter()
    mean = float(evaluate(qrels, run, f"ndcg@{K}", threads=os.cpu_count() or 1))
    return built - started, time.perf_counter() - built, mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="judged rows (default 10M)")
    parser.add_argument("--docs-per-query", type=int, default=100)
    parser.add_argument("--skip-ranx", action="store_true")
    parser.add_argument("--no-append", action="store_true", help="print the RESULT line only")
    args = parser.parse_args()

    table = judged_run(args.rows, args.docs_per_query, SEED)
    root = Path(tempfile.mkdtemp(prefix="smar-bench-metrics-"))
    try:
        path = root / "judged_run.parquet"
        pq.write_table(table, path)
        with spark_session("embedded", app_name="bench-metrics") as spark:
            spark_native(spark, path)  # warm-up: engine caches, Python workers, Parquet metadata
            spark_seconds, spark_mean, queries = spark_native(spark, path)
        numpy_seconds, numpy_mean = numpy_reference(table, args.docs_per_query)
        vectorised_seconds, vectorised_mean = numpy_vectorised(table)
        ranx_build, ranx_seconds, ranx_mean = (None, None, None) if args.skip_ranx else ranx_peer(table)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    line = {
        "benchmark": "ndcg@10",
        "rows": table.num_rows,
        "queries": queries,
        "docs_per_query": args.docs_per_query,
        "seed": SEED,
        "spark_s": round(spark_seconds, 2),
        "numpy_reference_s": round(numpy_seconds, 2),
        "numpy_vectorised_s": round(vectorised_seconds, 2),
        "ranx_evaluate_s": None if ranx_seconds is None else round(ranx_seconds, 2),
        "ranx_build_s": None if ranx_build is None else round(ranx_build, 2),
        "spark_vs_numpy": round(spark_seconds / numpy_seconds, 2),
        "within_2x": bool(spark_seconds <= 2 * numpy_seconds),
        "spark_rows_per_s": round(table.num_rows / spark_seconds),
        "mean_ndcg_spark": round(spark_mean, 10),
        "mean_ndcg_numpy": round(numpy_mean, 10),
        "mean_ndcg_ranx": None if ranx_mean is None else round(ranx_mean, 10),
        "agree": bool(
            abs(spark_mean - numpy_mean) < 1e-9
            and abs(vectorised_mean - numpy_mean) < 1e-9
            and (ranx_mean is None or abs(ranx_mean - numpy_mean) < 1e-6)
        ),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
    }
    record_result(line, "metrics", append=not args.no_append)


if __name__ == "__main__":
    main()

from __future__ import annotations

from collections import Counter

from smar.splits import query_split, query_split_column


def test_split_shares_are_close_to_the_rule():
    counts = Counter(query_split(f"q{i:06d}") for i in range(20_000))
    assert abs(counts["single_modal_train"] / 20_000 - 0.4) < 0.02
    assert abs(counts["test"] / 20_000 - 0.2) < 0.02


def test_spark_split_matches_python(spark):
    ids = [f"q{i:06d}" for i in range(300)] + ["qilin-q123", "ü-unicode"]
    frame = spark.createDataFrame([(i,) for i in ids], "query_id string")
    from pyspark.sql import functions as F

    got = {
        row.query_id: row.split
        for row in frame.select("query_id", query_split_column(F.col("query_id")).alias("split")).collect()
    }
    assert got == {i: query_split(i) for i in ids}

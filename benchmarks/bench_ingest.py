"""Benchmark: generate + ingest one day of 1M impressions; Delta write vs raw Parquet write.

Fixed seed and size. Prints one result line and appends it to benchmarks/results/ingest.jsonl.

    .venv/bin/python benchmarks/bench_ingest.py [--size large]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from _results import record_result  # benchmarks/ is on sys.path when run as a script

os.environ.setdefault("RUST_LOG", "error")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from smar.config import SmarSettings
from smar.engine import spark_session
from smar.ingest.generator import generate_day
from smar.ingest.jobs import ingest_tables
from smar.ingest.sources import land_generated
from smar.lake import Lakehouse

DS = "2026-11-01"
SEED = 20251016


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="large", choices=["tiny", "demo", "large"])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="smar-bench-"))
    settings = SmarSettings(warehouse=root / "warehouse", reports=root / "reports", artifacts=root / "artifacts")
    try:
        with spark_session("embedded") as spark:
            lake = Lakehouse(spark, settings)
            started = time.perf_counter()
            day = generate_day(DS, size=args.size, seed=SEED)
            generated = time.perf_counter()
            results = ingest_tables(
                spark,
                lake,
                land_generated(day),
                ds=DS,
                source="bench",
                source_label="generator",
                max_reject_fraction=0.0,
                run_quality_checks=True,
            )
            ingested = time.perf_counter()
            impressions = day.search_logs.num_rows

            # Same rows, side by side: engine Delta write (from the landed Parquet) vs pyarrow Parquet.
            landed = spark.read.parquet(
                str(root / "warehouse" / "_landing" / DS / "bench" / "bronze.search_logs.parquet")
            )
            landed.count()
            # Median of 3 alternating repetitions: these machines are noisy.
            delta_times, parquet_times = [], []
            for repetition in range(3):
                t0 = time.perf_counter()
                landed.drop("_row_number").write.format("delta").mode("overwrite").save(
                    str(root / f"delta_{repetition}")
                )
                delta_times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                pq.write_table(day.search_logs, root / f"raw_{repetition}.parquet")
                parquet_times.append(time.perf_counter() - t0)
            delta_seconds = statistics.median(delta_times)
            parquet_seconds = statistics.median(parquet_times)
        line = {
            "benchmark": "generate+ingest",
            "size": args.size,
            "impressions": impressions,
            "generate_s": round(generated - started, 2),
            "ingest_s": round(ingested - generated, 2),
            "generate_ingest_s": round(ingested - started, 2),
            "impressions_per_s": round(impressions / (ingested - started)),
            "delta_write_s": round(delta_seconds, 2),
            "parquet_write_s": round(parquet_seconds, 2),
            "delta_vs_parquet_throughput": round(parquet_seconds / delta_seconds, 2),
            "rejected": sum(r.rejected for r in results),
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
        }
        record_result(line, "ingest")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

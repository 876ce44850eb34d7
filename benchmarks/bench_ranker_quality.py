"""Benchmark: how much better than the incumbent are the single-modal rankers, with intervals?

Ingests `--days` generated days of `--size`, trains the four rankers with the real job
(`train_single_modal`, default epochs, fixed seed) and prints, per modality, NDCG@10 on held-out
`test` queries for the ranker, the logged production order and item popularity, with 95%
paired-bootstrap intervals of the differences. One RESULT line, appended to
benchmarks/results/ranker_quality.jsonl.

Why a separate benchmark: the demo world has 800 queries, so its answer modality has about 90
test lists of two answers each, too few to tell a one-point NDCG difference from noise. The
large world (20,000 queries) gives about ten times as many lists.

    .venv/bin/python benchmarks/bench_ranker_quality.py [--size large] [--days 1] [--device auto]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from _results import record_result  # benchmarks/ is on sys.path when run as a script

os.environ.setdefault("RUST_LOG", "error")

import torch

from smar.config import SmarSettings
from smar.engine import spark_session
from smar.ingest.jobs import run_ingest
from smar.lake import Lakehouse
from smar.single_modal.jobs import train_single_modal

LAST_DAY = date(2026, 11, 1)
SEED = 20251016


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="large", choices=["tiny", "demo", "large"])
    parser.add_argument("--days", type=int, default=1, help="training days ending 2026-11-01")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    days = [(LAST_DAY - timedelta(days=offset)).isoformat() for offset in reversed(range(args.days))]
    root = Path(tempfile.mkdtemp(prefix="smar-bench-ranker-quality-"))
    settings = SmarSettings(warehouse=root / "warehouse", artifacts=root / "artifacts", reports=root / "reports")
    try:
        with spark_session("embedded") as spark:
            lake = Lakehouse(spark, settings)
            for ds in days:
                run_ingest(spark, lake, ds=ds, source="generator", size=args.size, seed=SEED, run_quality_checks=False)
        # Training reads the bronze tables through delta-rs: no engine needed (as the job runs it).
        started = time.perf_counter()
        summary = train_single_modal(Lakehouse(None, settings), ds_list=days, seed=SEED, device=args.device)
        seconds = time.perf_counter() - started
        line: dict[str, object] = {
            "benchmark": "single-modal ranker quality",
            "size": args.size,
            "days": args.days,
            "train_seconds": round(seconds, 1),
        }
        for evaluation in summary.evaluations:
            line[evaluation.modality] = {
                "test_lists": evaluation.queries,
                "ranker": round(evaluation.ranker_ndcg_at_10, 4),
                "production": round(evaluation.production_ndcg_at_10, 4),
                "popularity": round(evaluation.popularity_ndcg_at_10, 4),
                "minus_production_ci95": [round(value, 4) for value in evaluation.versus_production_ci],
                "minus_popularity_ci95": [round(value, 4) for value in evaluation.versus_popularity_ci],
                "beats_both": evaluation.beats("production") and evaluation.beats("popularity"),
            }
        line["torch_threads"] = torch.get_num_threads()
        line["machine"] = f"{platform.machine()} {os.cpu_count()} cores"
        record_result(line, "ranker_quality")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

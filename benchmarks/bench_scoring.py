"""Benchmark: single-modal scoring through the pandas-UDF job against a bare torch loop.

Same rows (one demo day), same models, same process, fixed seed. Both paths encode each unique
text once and then score every impression; the UDF path is the real job (`score_single_modal`,
Spark plan, Arrow transfer, Delta write); the bare loop is `encode_unique` + `score_batch` over a
pandas frame. Prints one RESULT line and appends it to benchmarks/results/scoring.jsonl.

    .venv/bin/python benchmarks/bench_scoring.py [--size demo] [--device auto] [--gpu-batch-size 1024]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from _results import record_result  # benchmarks/ is on sys.path when run as a script

os.environ.setdefault("RUST_LOG", "error")

import torch

from smar.config import SmarSettings
from smar.engine import spark_session
from smar.ingest.jobs import run_ingest
from smar.lake import Lakehouse
from smar.single_modal.jobs import score_single_modal, train_single_modal
from smar.single_modal.list_features import production_percentile
from smar.single_modal.rankers.device import select_device
from smar.single_modal.rankers.encoder import encode_unique, get_text_encoder, rows_encoded_count
from smar.single_modal.rankers.features import item_texts
from smar.single_modal.scoring import score_batch

DS = "2026-11-01"
SEED = 20251016


def bare_loop(lake: Lakehouse, model_dir: str, *, gpu_batch_size: int, device: str) -> tuple[int, float, int]:
    """Rows scored, seconds, encoder rows: the same work without Spark."""
    logs = lake.read_arrow("bronze.search_logs").to_pandas()
    items = lake.read_arrow("bronze.items").to_pandas().drop(columns=["ds", "modality", "source"])
    frame = logs.merge(items, on="item_id", how="left")
    started = time.perf_counter()
    rows_before = rows_encoded_count()
    queries = encode_unique(frame["query_text"].tolist(), device=device)
    frame["item_text"] = item_texts(frame)
    texts = encode_unique(frame["item_text"].tolist(), device=device)
    frame["query_embedding"] = list(queries.embeddings[queries.index])
    frame["item_text_embedding"] = list(texts.embeddings[texts.index])
    frame["production_score_percentile"] = production_percentile(frame)[:, 0]
    score_batch(frame, model_dir, gpu_batch_size=gpu_batch_size, device=device)
    return len(frame), time.perf_counter() - started, rows_encoded_count() - rows_before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="demo", choices=["tiny", "demo", "large"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--gpu-batch-size", type=int, default=1024)
    args = parser.parse_args()
    torch.manual_seed(SEED)
    root = Path(tempfile.mkdtemp(prefix="smar-bench-scoring-"))
    settings = SmarSettings(warehouse=root / "warehouse", artifacts=root / "artifacts", reports=root / "reports")
    try:
        with spark_session("embedded") as spark:
            lake = Lakehouse(spark, settings)
            run_ingest(spark, lake, ds=DS, source="generator", size=args.size, seed=SEED, run_quality_checks=False)
            summary = train_single_modal(lake, ds_list=[DS], epochs=2, seed=SEED, device=args.device)
            get_text_encoder(select_device(args.device))  # load once, outside both timings
            # Warm both paths once (model caches, torch first-call costs), then time them side by side.
            score_single_modal(spark, lake, ds=DS, gpu_batch_size=args.gpu_batch_size, device=args.device)
            bare_loop(lake, str(summary.artifact_dir), gpu_batch_size=args.gpu_batch_size, device=args.device)

            rows_before = rows_encoded_count()
            started = time.perf_counter()
            result = score_single_modal(spark, lake, ds=DS, gpu_batch_size=args.gpu_batch_size, device=args.device)
            udf_seconds = time.perf_counter() - started
            udf_encoder_rows = rows_encoded_count() - rows_before
            rows, bare_seconds, bare_encoder_rows = bare_loop(
                lake, str(summary.artifact_dir), gpu_batch_size=args.gpu_batch_size, device=args.device
            )
        device = select_device(args.device)
        line = {
            "benchmark": "single-modal scoring",
            "size": args.size,
            "rows": rows,
            "udf_items_per_s": round(result.scored / udf_seconds, 1),
            "bare_loop_items_per_s": round(rows / bare_seconds, 1),
            "udf_vs_bare_ratio": round((result.scored / udf_seconds) / (rows / bare_seconds), 3),
            "udf_encoder_rows": udf_encoder_rows,
            "bare_encoder_rows": bare_encoder_rows,
            "pairs_per_encoder_row": round(result.scored / max(udf_encoder_rows, 1), 2),
            "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
            "gpu_batch_size": args.gpu_batch_size,
            "torch_threads": torch.get_num_threads(),
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
        }
        record_result(line, "scoring")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

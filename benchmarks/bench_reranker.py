"""Benchmark: page-reranker training throughput (pages/s) and the share of wall time the trainer
waits on data (goal: under 10%), with 0 and 2 DataLoader workers.

Fixed seed and sizes: 1,024 pages of 32 candidates (the demo's page length) with the demo's
input widths (MiniLM 384-d text embeddings, 32-d visual embeddings, 5 user features, 13 numeric
features), random values: throughput does not depend on what the numbers mean. Default model
and batch size (`TrainingConfig`), no validation pass, so the timing is the training loop
alone: data wait = time blocked on the DataLoader's next batch (collate included) plus the copy
to the device.

Prints one RESULT line and appends it to benchmarks/results/reranker.jsonl.

    .venv/bin/python benchmarks/bench_reranker.py [--pages 1024] [--epochs 3] [--device auto]

`--compare-methods R` instead times whole training runs, each as one run end to end, of the
old default `smar_pairwise` and of the default `smar_merge` in both its regimes: with 10% of the
candidates labelled (a calibrated-merge teacher, pseudo-grades for every candidate, then the
residual-merge student: two trainings) and with 100% (the residual merge alone). Every stage
runs `--epochs` epochs (no early stopping), 0 workers; pages/s = epochs x pages / wall seconds
of the whole run. The methods alternate (old, new, new, old, ...) R times on the same machine,
and each one's median is reported with its ratio to the old default (the bar: within 2x).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from _results import record_result  # benchmarks/ is on sys.path when run as a script

from smar.reranker.merge_selection import train_selected_merge
from smar.reranker.store import NUMERIC_FEATURE_NAMES, PageStore
from smar.reranker.training import TrainingConfig, train_reranker

SEED = 20251016
ITEMS_PER_PAGE = 32
TEXT_DIM, VISUAL_DIM, USER_DIM = 384, 32, 5


def random_store(pages: int, seed: int = SEED) -> PageStore:
    """`pages` pages of 32 items with the demo's widths, random features and full labels."""
    rng = np.random.default_rng(seed)
    items = pages * ITEMS_PER_PAGE
    modality = rng.integers(0, 4, size=items).astype(np.int64)
    text = rng.normal(size=(items, TEXT_DIM)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    query = rng.normal(size=(pages, TEXT_DIM)).astype(np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    return PageStore(
        page_id=np.array([f"p{page}" for page in range(pages)], dtype=object),
        page_ds=np.full(pages, "2026-11-01", dtype=object),
        query_id=np.array([f"q{page:06d}" for page in range(pages)], dtype=object),
        request_id=np.full(pages, "", dtype=object),
        offsets=np.arange(0, items + 1, ITEMS_PER_PAGE, dtype=np.int64),
        item_id=np.array([f"i{row}" for row in range(items)], dtype=object),
        modality_id=modality,
        position=np.tile(np.arange(1, ITEMS_PER_PAGE + 1, dtype=np.int32), pages),
        numeric=rng.normal(size=(items, len(NUMERIC_FEATURE_NAMES))).astype(np.float32),
        single_modal_score=rng.normal(size=items).astype(np.float32),
        rank_in_modality=np.ones(items, dtype=np.int32),
        text_embedding=text,
        visual_embedding=rng.normal(size=(items, VISUAL_DIM)).astype(np.float32),
        query_embedding=query,
        user_features=rng.random(size=(pages, USER_DIM)).astype(np.float32),
        labels=rng.integers(0, 5, size=items).astype(np.float32),
        encoder_name="benchmark-random",
    )


def measure(store: PageStore, *, workers: int, epochs: int, device: str) -> dict[str, float]:
    """Train SMAR (pairwise) for `epochs` epochs; pages/s and data-wait share, first epoch
    excluded (worker start-up, allocator warm-up)."""
    config = TrainingConfig(epochs=epochs + 1, patience=epochs + 1, seed=SEED, device=device, num_workers=workers)
    result = train_reranker(store, None, config, progress=False)
    timed = result.history[1:]
    seconds = sum(record["epoch_seconds"] for record in timed)
    waited = sum(record["data_wait_seconds"] for record in timed)
    pages = sum(record["pages"] for record in timed)
    return {
        "pages_per_s": round(pages / seconds, 1),
        "data_wait_fraction": round(waited / seconds, 4),
        "epoch_s": round(seconds / len(timed), 3),
    }


def time_method(store: PageStore, method: str, *, epochs: int, device: str) -> float:
    """Pages/s of one whole training run of `method` ("smar_pairwise", "smar_merge@10%",
    "smar_merge@100%"): epochs x pages / wall seconds."""
    config = TrainingConfig(epochs=epochs, patience=epochs, seed=SEED, device=device)
    if method == "smar_merge@10%":
        rng = np.random.default_rng(SEED)
        store = store.with_labels(np.where(rng.random(store.n_items) < 0.1, store.labels, np.nan))
    started = time.perf_counter()
    if method == "smar_pairwise":
        train_reranker(store, None, config.replace(objective="smar", intra_loss="pairwise_hinge"), progress=False)
    else:
        train_selected_merge(store, None, config, progress=False)
    return epochs * store.n_pages / (time.perf_counter() - started)


def compare_methods(store: PageStore, *, rounds: int, epochs: int, device: str) -> dict[str, object]:
    """Median pages/s of the old default and of smar_merge's two regimes, alternating."""
    methods = ("smar_pairwise", "smar_merge@10%", "smar_merge@100%")
    samples: dict[str, list[float]] = {method: [] for method in methods}
    for round_number in range(rounds):
        for method in methods if round_number % 2 == 0 else methods[::-1]:
            samples[method].append(round(time_method(store, method, epochs=epochs, device=device), 1))
    medians = {method: float(np.median(values)) for method, values in samples.items()}
    line: dict[str, object] = {f"{method}_pages_per_s": round(value, 1) for method, value in medians.items()}
    line.update({f"{method}_samples": values for method, values in samples.items()})
    for method in methods[1:]:
        line[f"{method}_over_smar_pairwise"] = round(medians[method] / medians["smar_pairwise"], 3)
    line["rounds"] = rounds
    return line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (one more runs as warm-up)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--compare-methods",
        type=int,
        default=0,
        metavar="R",
        help="time whole runs of smar_pairwise and smar_merge, alternating R times (medians)",
    )
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    store = random_store(args.pages)
    from smar.single_modal.rankers.device import select_device

    device = select_device(args.device)
    line: dict[str, object] = {
        "benchmark": "reranker-training",
        "pages": args.pages,
        "items_per_page": ITEMS_PER_PAGE,
        "epochs_timed": args.epochs,
        "batch_pages": TrainingConfig().batch_pages,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "torch_threads": torch.get_num_threads(),
    }
    if args.compare_methods:
        line["benchmark"] = "reranker-training-methods"
        line.update(compare_methods(store, rounds=args.compare_methods, epochs=args.epochs, device=str(device)))
    else:
        for workers in (0, 2):
            for name, value in measure(store, workers=workers, epochs=args.epochs, device=str(device)).items():
                line[f"workers{workers}_{name}"] = value
    line["machine"] = f"{platform.machine()} {os.cpu_count()} cores"
    record_result(line, "reranker")


if __name__ == "__main__":
    main()

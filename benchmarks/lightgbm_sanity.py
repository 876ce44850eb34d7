"""Real-data sanity check: the page reranker next to LightGBM lambdarank on LightGBM's own
learning-to-rank sample (`tests/data/lightgbm_lambdarank`: 201 train / 50 test queries,
300 sparse features, labels 0-4, one modality).

Same data for both: each query is one page, all its documents are candidates, every label is
used (the SFT setting; there is no single-modal score, so SMAR's consistency term has nothing to
keep). 20% of the training queries (fixed seed) are held out for early stopping, for both
models. LightGBM uses the settings of LightGBM's `examples/lambdarank/train.conf`. NDCG@10 on
`rank.test` is computed by one function for both (`smar.metrics.ndcg_at`), with linear gain
(trec_eval) and exponential gain (LightGBM's default label_gain).

Prints one RESULT line and appends it to benchmarks/results/reranker.jsonl.

    .venv/bin/python benchmarks/lightgbm_sanity.py [--data tests/data/lightgbm_lambdarank]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _results import record_result  # benchmarks/ is on sys.path when run as a script

from smar.metrics import mean_over_queries, ndcg_at
from smar.reranker.store import PageStore
from smar.reranker.training import TrainingConfig, score_store, train_reranker

SEED = 20251016
N_FEATURES = 300
DEFAULT_DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "lightgbm_lambdarank"


def read_libsvm(path: Path, n_features: int = N_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """Dense features [N, n_features] (1-based LibSVM indices; missing = 0) and labels [N]."""
    rows, labels = [], []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        label, *pairs = line.split()
        row = np.zeros(n_features, dtype=np.float32)
        for pair in pairs:
            index, value = pair.split(":")
            row[int(index) - 1] = float(value)
        rows.append(row)
        labels.append(float(label))
    return np.stack(rows), np.asarray(labels, dtype=np.float32)


def as_store(features: np.ndarray, labels: np.ndarray, group_sizes: np.ndarray, prefix: str) -> PageStore:
    """One page per query, one modality, no text / visual / user inputs."""
    pages, items = len(group_sizes), len(labels)
    return PageStore(
        page_id=np.array([f"{prefix}{page}" for page in range(pages)], dtype=object),
        page_ds=np.full(pages, "real", dtype=object),
        query_id=np.array([f"{prefix}{page}" for page in range(pages)], dtype=object),
        request_id=np.full(pages, "", dtype=object),
        offsets=np.concatenate([[0], np.cumsum(group_sizes)]).astype(np.int64),
        item_id=np.array([f"{prefix}d{row:05d}" for row in range(items)], dtype=object),
        modality_id=np.zeros(items, dtype=np.int64),
        position=np.zeros(items, dtype=np.int32),
        numeric=features,
        single_modal_score=np.zeros(items, dtype=np.float32),
        rank_in_modality=np.ones(items, dtype=np.int32),
        text_embedding=np.zeros((items, 0), dtype=np.float32),
        visual_embedding=np.zeros((items, 0), dtype=np.float32),
        query_embedding=np.zeros((pages, 0), dtype=np.float32),
        user_features=np.zeros((pages, 0), dtype=np.float32),
        labels=labels,
        feature_names=tuple(f"feature_{index}" for index in range(features.shape[1])),
        encoder_name="none",
    )


def mean_ndcg_at_10(store: PageStore, scores: np.ndarray, gain: str) -> float:
    values = []
    for page in range(store.n_pages):
        start, stop = int(store.offsets[page]), int(store.offsets[page + 1])
        values.append(
            ndcg_at(store.labels[start:stop], scores[start:stop], k=10, doc_ids=store.item_id[start:stop], gain=gain)
        )  # type: ignore[arg-type]
    return mean_over_queries(np.asarray(values))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import lightgbm

    train_x, train_y = read_libsvm(args.data / "rank.train")
    test_x, test_y = read_libsvm(args.data / "rank.test")
    train_groups = np.loadtxt(args.data / "rank.train.query", dtype=np.int64)
    test_groups = np.loadtxt(args.data / "rank.test.query", dtype=np.int64)
    full_train = as_store(train_x, train_y, train_groups, "train")
    test = as_store(test_x, test_y, test_groups, "test")
    held_out = np.random.default_rng(SEED).random(full_train.n_pages) < 0.2
    fit, validation = full_train.subset(np.flatnonzero(~held_out)), full_train.subset(np.flatnonzero(held_out))

    # LightGBM: examples/lambdarank/train.conf settings, early stopping on the same held-out queries.
    parameters = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "num_leaves": 31,
        "learning_rate": 0.1,
        "min_data_in_leaf": 50,
        "min_sum_hessian_in_leaf": 5.0,
        "seed": SEED,
        "deterministic": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    fit_rows = np.arange(fit.n_items)
    booster = lightgbm.train(
        parameters,
        lightgbm.Dataset(fit.numeric[fit_rows], label=fit.labels, group=fit.page_sizes),
        num_boost_round=300,
        valid_sets=[lightgbm.Dataset(validation.numeric, label=validation.labels, group=validation.page_sizes)],
        callbacks=[lightgbm.early_stopping(30, verbose=False)],
    )
    lightgbm_scores = booster.predict(test.numeric, num_iteration=booster.best_iteration)

    # The page reranker, SFT setting: page loss (ListMLE) on every label.
    config = TrainingConfig(objective="page_loss_only", epochs=args.epochs, patience=10, seed=SEED, device="cpu")
    result = train_reranker(fit, validation, config, progress=False)
    reranker_scores = score_store(result.model, test)

    line = {
        "benchmark": "lightgbm-sanity",
        "data": "lightgbm_lambdarank rank.test",
        "test_queries": test.n_pages,
        "lightgbm_ndcg_at_10_linear": round(mean_ndcg_at_10(test, lightgbm_scores, "linear"), 4),
        "reranker_ndcg_at_10_linear": round(mean_ndcg_at_10(test, reranker_scores, "linear"), 4),
        "lightgbm_ndcg_at_10_exponential": round(mean_ndcg_at_10(test, lightgbm_scores, "exponential"), 4),
        "reranker_ndcg_at_10_exponential": round(mean_ndcg_at_10(test, reranker_scores, "exponential"), 4),
        "lightgbm_best_iteration": int(booster.best_iteration),
        "reranker_best_epoch": result.best_epoch,
        "seed": SEED,
    }
    record_result(line, "reranker")


if __name__ == "__main__":
    main()

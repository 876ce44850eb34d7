"""Real-data sanity check: the page reranker next to LightGBM lambdarank on LightGBM's own
learning-to-rank sample (`tests/data/lightgbm_lambdarank`: 201 train / 50 test queries,
300 sparse features, labels 0-4, one modality).

Same data for both: each query is one page, all its documents are candidates, every label is
used (the SFT setting; there is no single-modal score, so SMAR's consistency term has nothing to
keep). 20% of the training queries (fixed seed) are held out for early stopping, for both
models. LightGBM uses the settings of LightGBM's `examples/lambdarank/train.conf`. NDCG@10 on
`rank.test` is computed by one function for both (`smar.metrics.ndcg_at`), with linear gain
(trec_eval) and exponential gain (LightGBM's default label_gain).

`--recipe iclr2021` adds the input treatment of "Are Neural Rankers still Outperformed by
Gradient Boosted Decision Trees?" (Qin et al., ICLR 2021): features through
sign(x) * log1p(|x|) before the (training-set) standardisation, Gaussian input noise during
training, and listwise losses. The variant (loss, noise, dropout, attention) is chosen by NDCG@10
on the held-out 20% of the training queries, never on rank.test, and reported next to the
default SFT reranker and LightGBM with the paired difference to LightGBM (bootstrap over the
test queries).

Prints one RESULT line and appends it to benchmarks/results/reranker.jsonl.

    .venv/bin/python benchmarks/lightgbm_sanity.py [--data tests/data/lightgbm_lambdarank] [--recipe iclr2021]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
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
    parser.add_argument("--recipe", choices=("default", "iclr2021"), default="default")
    parser.add_argument("--variant", default=None, help="JSON of one recipe variant (skips the grid)")
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

    recipe: dict[str, object] = {}
    if args.recipe == "iclr2021":
        grid = (json.loads(args.variant),) if args.variant else ICLR2021_GRID
        recipe = iclr2021_recipe(fit, validation, test, epochs=args.epochs, grid=grid)
        test_scores = np.asarray(recipe.pop("recipe_test_scores"))
        difference = paired_difference(test, test_scores, lightgbm_scores)
        recipe.update({f"recipe_minus_lightgbm_{name}": value for name, value in difference.items()})

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
        **recipe,
    }
    record_result(line, "reranker")


def log1p_features(store: PageStore) -> PageStore:
    """The store with numeric features x -> sign(x) * log1p(|x|) (the model then standardises
    them with training-set statistics)."""
    return replace(store, numeric=(np.sign(store.numeric) * np.log1p(np.abs(store.numeric))).astype(np.float32))


#: Variants of the recipe, chosen among on the held-out training queries.
ICLR2021_GRID: tuple[dict[str, object], ...] = tuple(
    {"page_loss": loss, "input_noise": noise, "dropout": dropout, "self_attention": attention}
    for loss in ("softmax_cross_entropy", "list_mle")
    for noise in (0.1, 0.3)
    for dropout in (0.1, 0.3)
    for attention in (True, False)
)


def per_query_ndcg(store: PageStore, scores: np.ndarray, gain: str = "linear") -> np.ndarray:
    """[P] NDCG@10 of each page of `store` under `scores`."""
    return np.asarray(
        [
            ndcg_at(store.labels[a:b], scores[a:b], k=10, doc_ids=store.item_id[a:b], gain=gain)  # type: ignore[arg-type]
            for a, b in zip(store.offsets[:-1], store.offsets[1:], strict=True)
        ],
        dtype=np.float64,
    )


def paired_difference(
    test: PageStore, scores: np.ndarray, reference: np.ndarray, *, replicates: int = 5000
) -> dict[str, float]:
    """Mean per-query NDCG@10 (linear) difference scores - reference over the test queries, with a
    95% bootstrap interval over the queries (paired)."""
    difference = per_query_ndcg(test, scores) - per_query_ndcg(test, reference)
    difference = difference[~np.isnan(difference)]
    rng = np.random.default_rng(SEED)
    draws = difference[rng.integers(0, len(difference), size=(replicates, len(difference)))].mean(1)
    return {
        "mean": round(float(difference.mean()), 4),
        "ci_low": round(float(np.quantile(draws, 0.025)), 4),
        "ci_high": round(float(np.quantile(draws, 0.975)), 4),
    }


def iclr2021_recipe(
    fit: PageStore, validation: PageStore, test: PageStore, *, epochs: int, grid: tuple[dict[str, object], ...]
) -> dict[str, object]:
    """Train every variant of `grid` on log1p features, pick the best by validation NDCG@10
    (linear gain), and report the chosen variant's rank.test NDCG@10 (both gains)."""
    fit_l, validation_l, test_l = log1p_features(fit), log1p_features(validation), log1p_features(test)
    best: tuple[float, dict[str, object], np.ndarray] | None = None
    tried = []
    for variant in grid:
        config = TrainingConfig(
            objective="page_loss_only",
            epochs=epochs,
            patience=10,
            seed=SEED,
            device="cpu",
            learning_rate=1e-3,
            weight_decay=1e-2,
        ).replace(**variant)
        result = train_reranker(fit_l, validation_l, config, progress=False)
        value = mean_ndcg_at_10(validation_l, score_store(result.model, validation_l), "linear")
        tried.append({**variant, "validation_ndcg_at_10": round(value, 4)})
        if best is None or value > best[0]:
            best = (value, variant, score_store(result.model, test_l))
    assert best is not None
    value, variant, scores = best
    return {
        "recipe": "iclr2021",
        "recipe_variant": variant,
        "recipe_validation_ndcg_at_10": round(value, 4),
        "recipe_ndcg_at_10_linear": round(mean_ndcg_at_10(test, scores, "linear"), 4),
        "recipe_ndcg_at_10_exponential": round(mean_ndcg_at_10(test, scores, "exponential"), 4),
        "recipe_variants_tried": tried,
        "recipe_test_scores": scores.tolist(),
    }


if __name__ == "__main__":
    main()

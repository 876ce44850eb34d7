"""LightGBM with a SMAR objective: the page labels as LambdaRank pairs plus the single-modal
orders as extra, weighted preferences over every candidate of a page; optionally a monotone
calibrated merge (the score features constrained non-decreasing, no other item-level feature).

Objective (a custom LightGBM objective over all candidates, one group per page; s = the
booster's scores, sigma(x) = 1 / (1 + exp(-x))):

    L = sum_pages [ sum_{i, j labelled, y_i > y_j} |dNDCG_ij| * log(1 + exp(-(s_i - s_j)))
                  + lambda * sum_{i, j same modality, g_i > g_j} w_ij * log(1 + exp(-(s_i - s_j))) ]

with |dNDCG_ij| the LambdaRank weight of swapping i and j in the current order of the page's
labelled items (linear gain, 1/log2(1 + rank) discount, divided by the ideal DCG), and w_ij = 1 /
(number of single-modal pairs of the page) so lambda is the intra term's share per page. The
gradient and the diagonal Hessian per item are the sums over its pairs of -/+ rho * weight and
rho * (1 - rho) * weight, rho = sigma(-(s_i - s_j)).

Tensors are padded `[pages, slate]` numpy arrays (slate = the longest page).

`monotone=True` is the calibrated merge as a GBDT: features = the single-modal score transforms
(raw, within-page z-score, percentile, 1/rank; all with LightGBM's monotone constraint +1) and
context only (modality one-hot, the query's principal components, user features, per-modality
summaries of the page's scores). Within a (page, modality) the context is constant and every
score feature rises with the single-modal score, so the booster's score cannot fall along the
single-modal order; a tie is broken by rank (`RANK_EPSILON * -log(rank)` is added).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smar.config import FrozenConfig
from smar.reranker.baselines import EmbeddingProjection, fit_embedding_projection, lightgbm_features
from smar.reranker.store import NUMERIC_FEATURE_NAMES, PageStore
from smar.reranker.training import mean_ndcg
from smar.vocabulary import MODALITIES

MONOTONE_SCORE_COLUMNS: tuple[int, ...] = tuple(
    NUMERIC_FEATURE_NAMES.index(name)
    for name in (
        "single_modal_score",
        "score_zscore_in_modality",
        "score_percentile_in_modality",
        "reciprocal_rank_in_modality",
    )
)
RANK_EPSILON = 1e-4


class GbdtSmarConfig(FrozenConfig):
    """LightGBM settings plus the SMAR terms. intra_weight = lambda (0: page pairs only).

    Defaults (validation queries, 2 seeds, docs/reranker.md): every feature (`monotone=False`:
    the monotone merge features scored 0.809 / 0.851 at 10 / 100% of the labels, against 0.828 /
    0.883 with every feature) and lambda = 0.1, the best weight of the SMAR term (0.3: 0.820 /
    0.880; 1: 0.820 / 0.877); lambda = 0, the page pairs alone, is better at 10% (0.852)."""

    num_leaves: int = 15
    learning_rate: float = 0.05
    n_estimators: int = 400
    min_data_in_leaf: int = 10
    feature_fraction: float = 0.8
    early_stopping_rounds: int = 40
    embedding_components: int = 8
    intra_weight: float = 0.1
    monotone: bool = False
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def page_modality_stats(store: PageStore) -> NDArray[np.float32]:
    """[N, 3 * M]: per page, for each modality, the mean and max of the within-modality
    standardised single-modal score over the page and the item count / 10 (repeated on every
    item of the page)."""
    modalities = len(MODALITIES)
    page_of_item = store.page_of_item
    score = store.single_modal_score.astype(np.float64)
    standardised = np.zeros_like(score)
    for modality in range(modalities):
        rows = store.modality_id == modality
        if rows.any():
            spread = score[rows].std()
            standardised[rows] = (score[rows] - score[rows].mean()) / (spread if spread > 1e-6 else 1.0)
    stats = np.zeros((store.n_pages, 3 * modalities))
    for modality in range(modalities):
        rows = np.flatnonzero(store.modality_id == modality)
        counts = np.bincount(page_of_item[rows], minlength=store.n_pages)
        sums = np.bincount(page_of_item[rows], weights=standardised[rows], minlength=store.n_pages)
        maxima = np.full(store.n_pages, -np.inf)
        np.maximum.at(maxima, page_of_item[rows], standardised[rows])
        stats[:, modality] = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
        stats[:, modalities + modality] = np.where(counts > 0, maxima, 0.0)
        stats[:, 2 * modalities + modality] = counts / 10.0
    return stats[page_of_item].astype(np.float32)


def merge_features(store: PageStore, projection: EmbeddingProjection) -> tuple[NDArray[np.float32], list[int]]:
    """([N, d] features, monotone constraint per column) of the monotone GBDT merge: the score
    transforms (+1), then context columns (0): modality one-hot, user features, projected query
    embedding, page-modality stats."""
    page_of_item = store.page_of_item
    scores = store.numeric[:, list(MONOTONE_SCORE_COLUMNS)]
    context = np.concatenate(
        [
            np.eye(len(MODALITIES), dtype=np.float32)[store.modality_id],
            store.user_features[page_of_item],
            projection.apply(store.query_embedding)[page_of_item],
            page_modality_stats(store),
        ],
        axis=1,
    )
    constraints = [1] * scores.shape[1] + [0] * context.shape[1]
    return np.concatenate([scores, context], axis=1).astype(np.float32), constraints


def _padded(store: PageStore, values: NDArray[Any], fill: float | int | bool) -> NDArray[Any]:
    """[pages, slate] view of a per-item array, padded with `fill` (slate = the longest page)."""
    sizes = store.page_sizes
    slate = int(sizes.max()) if store.n_pages else 0
    out = np.full((store.n_pages, slate), fill, dtype=np.asarray(values).dtype)
    columns = np.arange(store.n_items) - np.repeat(store.offsets[:-1], sizes)
    out[store.page_of_item, columns] = values
    return out


class SmarObjective:
    """The custom objective of the module docstring for the pages of `store` (rows in store
    order). Call with (predictions [N], dataset) -> (gradient [N], hessian [N])."""

    def __init__(self, store: PageStore, intra_weight: float) -> None:
        self.store = store
        self.intra_weight = float(intra_weight)
        sizes = store.page_sizes
        self.columns = np.arange(store.n_items) - np.repeat(store.offsets[:-1], sizes)
        self.rows = store.page_of_item
        labels = _padded(store, np.nan_to_num(store.labels, nan=-1.0).astype(np.float64), -1.0)
        self.labelled = labels >= 0
        self.labels = np.where(self.labelled, labels, 0.0)
        real = _padded(store, np.ones(store.n_items, dtype=bool), False)
        modality = _padded(store, store.modality_id, -1)
        single = _padded(store, store.single_modal_score.astype(np.float64), 0.0)
        # intra-modal pairs i > j (same page and modality, g_i > g_j), each page's weights sum to 1
        intra = (
            real[:, :, None]
            & real[:, None, :]
            & (modality[:, :, None] == modality[:, None, :])
            & (single[:, :, None] > single[:, None, :])
        )
        counts = intra.sum(axis=(1, 2), keepdims=True)
        self.intra = intra.astype(np.float64) / np.maximum(counts, 1)
        self.label_pairs = (
            self.labelled[:, :, None] & self.labelled[:, None, :] & (self.labels[:, :, None] > self.labels[:, None, :])
        )
        gains = np.where(self.labelled, self.labels, 0.0)
        ideal = -np.sort(-gains, axis=1)
        discounts = 1.0 / np.log2(np.arange(2, ideal.shape[1] + 2))
        self.ideal_dcg = np.maximum((ideal * discounts).sum(1), 1e-12)
        self.gains = gains

    def lambda_weights(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        """[pages, slate, slate] |dNDCG| of swapping each labelled pair in the current order."""
        keyed = np.where(self.labelled, scores, -np.inf)
        order = np.argsort(-keyed, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :].repeat(order.shape[0], 0), axis=1)
        discount = 1.0 / np.log2(ranks + 2.0)
        return (
            np.abs(self.gains[:, :, None] - self.gains[:, None, :])
            * np.abs(discount[:, :, None] - discount[:, None, :])
            / self.ideal_dcg[:, None, None]
        )

    def loss(self, predictions: NDArray[np.floating], weights: NDArray[np.float64] | None = None) -> float:
        """L at `predictions` [N] with the pair weights held fixed (`weights` [pages, slate,
        slate]; default: those of the current order), the function whose gradient `__call__`
        returns."""
        scores = np.zeros(self.labelled.shape)
        scores[self.rows, self.columns] = predictions
        if weights is None:
            weights = self.pair_weights(scores)
        difference = scores[:, :, None] - scores[:, None, :]
        return float((weights * np.logaddexp(0.0, -difference)).sum())

    def pair_weights(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        """[pages, slate, slate] weight of each ordered pair (i preferred over j)."""
        return self.lambda_weights(scores) * self.label_pairs + self.intra_weight * self.intra

    def __call__(
        self, predictions: NDArray[np.floating], dataset: Any = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        scores = np.zeros(self.labelled.shape)
        scores[self.rows, self.columns] = predictions
        difference = scores[:, :, None] - scores[:, None, :]
        rho = 1.0 / (1.0 + np.exp(np.clip(difference, -50, 50)))  # sigma(-(s_i - s_j))
        weight = self.pair_weights(scores)
        pull = rho * weight
        curvature = rho * (1.0 - rho) * weight
        gradient = -pull.sum(2) + pull.sum(1)
        hessian = curvature.sum(2) + curvature.sum(1)
        return gradient[self.rows, self.columns], np.maximum(hessian[self.rows, self.columns], 1e-9)


@dataclass
class GbdtSmarModel:
    """A fitted booster with its feature projection; scores like `LightGBMModel`."""

    booster: Any
    projection: EmbeddingProjection
    config: GbdtSmarConfig
    best_iteration: int

    def features(self, store: PageStore) -> NDArray[np.float32]:
        if self.config.monotone:
            return merge_features(store, self.projection)[0]
        return lightgbm_features(store, self.projection)

    def score(self, store: PageStore) -> NDArray[np.float32]:
        """[N] scores; with `monotone`, plus RANK_EPSILON * -log(rank) to break ties by rank."""
        raw = self.booster.predict(self.features(store), num_iteration=self.best_iteration or None)
        if self.config.monotone:
            raw = raw - RANK_EPSILON * np.log(np.maximum(store.rank_in_modality, 1))
        return raw.astype(np.float32)

    def save(self, directory: Path, *, extra: dict[str, Any] | None = None) -> Path:
        """`model.txt`, `projection.npz`, `config.json` (kind "gbdt_smar")."""
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / "model.txt"), num_iteration=self.best_iteration or None)
        np.savez(directory / "projection.npz", mean=self.projection.mean, components=self.projection.components)
        document = {
            "kind": "gbdt_smar",
            "gbdt_smar": self.config.to_dict(),
            "best_iteration": self.best_iteration,
            **(extra or {}),
        }
        (directory / "config.json").write_text(json.dumps(document, indent=2, sort_keys=True, default=str))
        return directory

    @classmethod
    def load(cls, directory: Path) -> GbdtSmarModel:
        import lightgbm

        document = json.loads((directory / "config.json").read_text())
        with np.load(directory / "projection.npz") as stored:
            projection = EmbeddingProjection(stored["mean"], stored["components"])
        booster = lightgbm.Booster(model_file=str(directory / "model.txt"))
        return cls(booster, projection, GbdtSmarConfig.model_validate(document["gbdt_smar"]), 0)


def train_gbdt_smar(train: PageStore, validation: PageStore | None, config: GbdtSmarConfig) -> GbdtSmarModel:
    """Boost on every candidate of `train`'s labelled pages with `SmarObjective` (page pairs +
    lambda * single-modal pairs); early stopping on `validation`'s page labels (NDCG@10 of the
    served scores, checked every 10 rounds) when given."""
    import lightgbm

    if not train.label_mask.any():
        raise ValueError("the GBDT needs page-labelled training items; none found")
    projection = fit_embedding_projection(train, config.embedding_components)
    if config.monotone:
        features, constraints = merge_features(train, projection)
    else:
        features, constraints = lightgbm_features(train, projection), None
    objective = SmarObjective(train, config.intra_weight)
    parameters: dict[str, Any] = {
        "objective": "none",
        "num_leaves": config.num_leaves,
        "learning_rate": config.learning_rate,
        "min_data_in_leaf": config.min_data_in_leaf,
        "feature_fraction": config.feature_fraction,
        "seed": config.seed,
        "deterministic": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    if constraints is not None:
        parameters.update(monotone_constraints=constraints, monotone_constraints_method="advanced")
    dataset = lightgbm.Dataset(
        features, label=np.zeros(train.n_items), group=train.page_sizes.tolist(), free_raw_data=False
    )
    booster = lightgbm.Booster(parameters, dataset)
    model = GbdtSmarModel(booster, projection, config, 0)
    best, best_round, stale = -np.inf, 0, 0
    stopping = validation if validation is not None and bool(validation.label_mask.any()) else None
    for round_number in range(1, config.n_estimators + 1):
        booster.update(fobj=objective)
        if stopping is None or (round_number % 10 and round_number != config.n_estimators):
            continue
        model.best_iteration = round_number
        value = mean_ndcg(stopping, model.score(stopping), stopping.labels)
        if value > best + 1e-9:
            best, best_round, stale = value, round_number, 0
        else:
            stale += 10
            if stale >= config.early_stopping_rounds:
                break
    model.best_iteration = best_round if stopping is not None else config.n_estimators
    return model

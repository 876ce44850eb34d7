"""Baselines of the whole-page reranker, scored on the same `PageStore`s as SMAR.

* SFT and page-loss-only are the neural reranker trained with `objective="page_loss_only"`
  (`smar.reranker.training`), at 100% of the page labels or at the sweep's budget.
* Naive fusions, which need no page label:
  - `fusion_raw`: the raw single-modal scores, compared across modalities as if on one scale;
  - `fusion_zscore`: each score's z-score within its (page, modality);
  - `fusion_interleave`: each modality keeps its single-modal order, and the page is filled
    slot by slot to match the production page's modality share in the top k slots.
* LightGBM lambdarank (PyPI `lightgbm`) on the page-labelled items, with the tabular features a
  practitioner would start from (`lightgbm_features`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smar.config import FrozenConfig
from smar.reranker.store import NUMERIC_FEATURE_NAMES, PageStore
from smar.vocabulary import FUSION_METHODS, MODALITIES

ZSCORE_COLUMN = NUMERIC_FEATURE_NAMES.index("score_zscore_in_modality")


# ----------------------------------------------------------------------------------- fusions


def fusion_raw_scores(store: PageStore) -> NDArray[np.float32]:
    """[N] the raw single-modal score (scales differ per modality: the naive baseline)."""
    return store.single_modal_score.astype(np.float32)


def fusion_zscore_scores(store: PageStore) -> NDArray[np.float32]:
    """[N] the single-modal score's z-score within its (page, modality); 0 for a lone item."""
    return store.numeric[:, ZSCORE_COLUMN].astype(np.float32)


def production_modality_share(store: PageStore, *, top_k: int = 10) -> dict[str, float]:
    """Share of the logged slots 1..top_k that each modality fills on `store`'s pages (shares sum
    to 1; a modality never shown in the top k gets 0)."""
    shown = (store.position >= 1) & (store.position <= top_k)
    counts = np.bincount(store.modality_id[shown], minlength=len(MODALITIES)).astype(np.float64)
    if counts.sum() == 0:
        raise ValueError(f"no logged position within 1..{top_k}; cannot estimate modality shares")
    return {name: float(count / counts.sum()) for name, count in zip(MODALITIES, counts, strict=True)}


def interleave_order(
    modality_ids: NDArray[np.integer], ranks: NDArray[np.integer], shares: dict[str, float]
) -> NDArray[np.int64]:
    """Item offsets of one page in interleaved order. Slot t (1-based) goes to the modality with
    the largest deficit share_m * t - taken_m among those with items left (ties: larger share,
    then lower modality id); each modality gives its items in single-modal rank order."""
    share = np.array([shares.get(name, 0.0) for name in MODALITIES])
    queues = {
        int(modality): list(
            np.flatnonzero(modality_ids == modality)[np.argsort(ranks[modality_ids == modality], kind="stable")]
        )
        for modality in np.unique(modality_ids)
    }
    taken = np.zeros(len(MODALITIES))
    order: list[int] = []
    for slot in range(1, len(modality_ids) + 1):
        candidates = [modality for modality, queue in queues.items() if queue]
        chosen = max(candidates, key=lambda m: (share[m] * slot - taken[m], share[m], -m))
        order.append(int(queues[chosen].pop(0)))
        taken[chosen] += 1
    return np.asarray(order, dtype=np.int64)


def fusion_interleave_scores(store: PageStore, shares: dict[str, float]) -> NDArray[np.float32]:
    """[N] scores that reproduce `interleave_order` on every page (n - slot + 1: first = n)."""
    scores = np.zeros(store.n_items, dtype=np.float32)
    for page in range(store.n_pages):
        start, stop = int(store.offsets[page]), int(store.offsets[page + 1])
        order = interleave_order(store.modality_id[start:stop], store.rank_in_modality[start:stop], shares)
        page_scores = np.empty(stop - start, dtype=np.float32)
        page_scores[order] = np.arange(stop - start, 0, -1, dtype=np.float32)
        scores[start:stop] = page_scores
    return scores


def fusion_scores(method: str, store: PageStore, parameters: dict[str, Any]) -> NDArray[np.float32]:
    """[N] scores of fusion `method` (`parameters`: {"shares": ...} for fusion_interleave)."""
    if method == "fusion_raw":
        return fusion_raw_scores(store)
    if method == "fusion_zscore":
        return fusion_zscore_scores(store)
    if method == "fusion_interleave":
        return fusion_interleave_scores(store, parameters["shares"])
    raise ValueError(f"unknown fusion {method!r}; expected one of {FUSION_METHODS}")


# ---------------------------------------------------------------------------------- LightGBM


class LightGBMConfig(FrozenConfig):
    """LightGBM lambdarank settings (defaults: small trees for a few hundred labelled pages)."""

    num_leaves: int = 15
    learning_rate: float = 0.05
    n_estimators: int = 400
    min_data_in_leaf: int = 10
    feature_fraction: float = 0.8
    early_stopping_rounds: int = 40
    embedding_components: int = 8
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


@dataclass
class EmbeddingProjection:
    """Principal components of the MiniLM embeddings of the training pages (queries and items
    together): `(embedding - mean) @ components` gives k tree-friendly columns."""

    mean: NDArray[np.float32]
    components: NDArray[np.float32]  # [T, k]

    def apply(self, embeddings: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.components.shape[1] == 0 or embeddings.shape[1] == 0:
            return np.zeros((len(embeddings), self.components.shape[1]), dtype=np.float32)
        return ((embeddings - self.mean) @ self.components).astype(np.float32)


def fit_embedding_projection(store: PageStore, components: int) -> EmbeddingProjection:
    """PCA (SVD) of the store's query and item text embeddings."""
    stacked = np.concatenate([store.query_embedding, store.text_embedding])
    if stacked.shape[1] == 0 or components == 0:
        return EmbeddingProjection(np.zeros(stacked.shape[1], np.float32), np.zeros((stacked.shape[1], 0), np.float32))
    mean = stacked.mean(axis=0)
    _, _, right = np.linalg.svd(stacked - mean, full_matrices=False)
    return EmbeddingProjection(mean.astype(np.float32), right[:components].T.astype(np.float32))


def lightgbm_features(store: PageStore, projection: EmbeddingProjection) -> NDArray[np.float32]:
    """[N, d]: numeric features, modality one-hot, user features, and the projected query and
    item text embeddings (trees can then learn query-intent x modality interactions)."""
    page_of_item = store.page_of_item
    one_hot = np.eye(len(MODALITIES), dtype=np.float32)[store.modality_id]
    return np.concatenate(
        [
            store.numeric,
            one_hot,
            store.user_features[page_of_item],
            projection.apply(store.query_embedding)[page_of_item],
            projection.apply(store.text_embedding),
        ],
        axis=1,
    ).astype(np.float32)


def _labelled_rows(store: PageStore) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Row indices of labelled items (page order kept) and the labelled count of each page
    that has any (LightGBM's `group`)."""
    mask = store.label_mask
    per_page = np.add.reduceat(mask.astype(np.int64), store.offsets[:-1]) if store.n_pages else np.zeros(0, np.int64)
    return np.flatnonzero(mask), per_page[per_page > 0]


@dataclass
class LightGBMModel:
    """A fitted lambdarank booster with its embedding projection."""

    booster: Any
    projection: EmbeddingProjection
    config: LightGBMConfig
    best_iteration: int

    def score(self, store: PageStore) -> NDArray[np.float32]:
        """[N] scores of every item of `store`."""
        features = lightgbm_features(store, self.projection)
        return self.booster.predict(features, num_iteration=self.best_iteration or None).astype(np.float32)

    def save(self, directory: Path, *, extra: dict[str, Any] | None = None) -> Path:
        """Write `model.txt`, `projection.npz` and `config.json` (kind "lightgbm")."""
        document = {"kind": "lightgbm", "lightgbm": self.config.to_dict(), "best_iteration": self.best_iteration}
        return save_booster_artifact(directory, self.booster, self.best_iteration, self.projection, document, extra)

    @classmethod
    def load(cls, directory: Path) -> LightGBMModel:
        """Read an artifact written by `save`."""
        booster, projection, document = load_booster_artifact(directory)
        return cls(booster, projection, LightGBMConfig.model_validate(document["lightgbm"]), 0)


def save_booster_artifact(
    directory: Path, booster: Any, best_iteration: int, projection: EmbeddingProjection,
    document: dict[str, Any], extra: dict[str, Any] | None,
) -> Path:  # fmt: skip
    """The one layout of a boosted model's artifact (LightGBM and gbdt_smar alike): the booster
    cut at `best_iteration` as `model.txt`, the embedding projection as `projection.npz`, and
    `document` (its kind and config) plus `extra` as `config.json`."""
    directory.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(directory / "model.txt"), num_iteration=best_iteration or None)
    np.savez(directory / "projection.npz", mean=projection.mean, components=projection.components)
    payload = {**document, **(extra or {})}
    (directory / "config.json").write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    return directory


def load_booster_artifact(directory: Path) -> tuple[Any, EmbeddingProjection, dict[str, Any]]:
    """(booster, projection, config.json's document) of an artifact written by `save_booster_artifact`."""
    import lightgbm

    document = json.loads((directory / "config.json").read_text())
    with np.load(directory / "projection.npz") as stored:
        projection = EmbeddingProjection(stored["mean"], stored["components"])
    return lightgbm.Booster(model_file=str(directory / "model.txt")), projection, document


def train_lightgbm(train: PageStore, validation: PageStore | None, config: LightGBMConfig) -> LightGBMModel:
    """LightGBM lambdarank on `train`'s page-labelled items (grades rounded to 0..4, one query
    group per page); early stopping on `validation`'s labelled items (NDCG@10) when given."""
    import lightgbm

    projection = fit_embedding_projection(train, config.embedding_components)
    rows, groups = _labelled_rows(train)
    if len(rows) == 0:
        raise ValueError("LightGBM needs page-labelled training items; none found")
    features = lightgbm_features(train, projection)
    parameters = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "num_leaves": config.num_leaves,
        "learning_rate": config.learning_rate,
        "min_data_in_leaf": config.min_data_in_leaf,
        "feature_fraction": config.feature_fraction,
        "seed": config.seed,
        "deterministic": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    labels = np.clip(np.rint(train.labels[rows]), 0, 4).astype(np.int32)
    train_set = lightgbm.Dataset(features[rows], label=labels, group=groups)
    valid_sets: list[Any] = []
    callbacks: list[Any] = []
    if validation is not None and validation.label_mask.any():
        valid_rows, valid_groups = _labelled_rows(validation)
        valid_labels = np.clip(np.rint(validation.labels[valid_rows]), 0, 4).astype(np.int32)
        valid_features = lightgbm_features(validation, projection)[valid_rows]
        valid_sets = [lightgbm.Dataset(valid_features, label=valid_labels, group=valid_groups, reference=train_set)]
        callbacks = [lightgbm.early_stopping(config.early_stopping_rounds, verbose=False)]
    booster = lightgbm.train(
        parameters, train_set, num_boost_round=config.n_estimators, valid_sets=valid_sets, callbacks=callbacks
    )
    return LightGBMModel(booster, projection, config, int(booster.best_iteration or 0))

"""The page store: columnar page records, the unit the reranker trains and scores on.

The items of page p are rows `offsets[p]:offsets[p+1]`, so a page is a slice and a training
epoch copies nothing. Labels live in `labels` (NaN = unlabelled). Per item, `numeric` holds the
features of `NUMERIC_FEATURE_NAMES` in that column order; besides, the modality id (an index into
`smar.vocabulary.MODALITIES`), the item text embedding and the visual embedding, the page's query
embedding and user features. `smar.reranker.inputs.build_page_store` assembles a store from the
tables.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from smar.annotation.strategies import select_positions
from smar.reranker.text_cache import DEFAULT_ENCODER_NAME
from smar.single_modal.rankers.features import ENGAGEMENT_FEATURE_NAMES
from smar.splits import query_split
from smar.vocabulary import MODALITIES

log = logging.getLogger(__name__)

PageUnit = Literal["query", "request"]

#: Modality ids used by the model's modality embedding (index into `MODALITIES`).
MODALITY_INDEX: dict[str, int] = {name: index for index, name in enumerate(MODALITIES)}
#: Column order of `PageStore.numeric`.
NUMERIC_FEATURE_NAMES: tuple[str, ...] = (
    "single_modal_score",
    "score_percentile_in_modality",
    "score_zscore_in_modality",
    "reciprocal_rank_in_modality",
    "query_item_cosine",
    "has_visual_embedding",
    *ENGAGEMENT_FEATURE_NAMES,
)


@dataclass(frozen=True)
class PageStore:
    """Columnar page records; items of page p are rows `offsets[p]:offsets[p+1]`.

    Per page ([P]): page_id, page_ds, query_id, request_id ("" for query pages), query_embedding
    [P, T], user_features [P, U]. Per item ([N]): item_id, modality_id, position (logged slot),
    numeric [N, F] (`NUMERIC_FEATURE_NAMES`), single_modal_score, rank_in_modality,
    text_embedding [N, T], visual_embedding [N, V], labels (NaN = no page label).
    """

    page_id: NDArray[np.object_]
    page_ds: NDArray[np.object_]
    query_id: NDArray[np.object_]
    request_id: NDArray[np.object_]
    offsets: NDArray[np.int64]
    item_id: NDArray[np.object_]
    modality_id: NDArray[np.int64]
    position: NDArray[np.int32]
    numeric: NDArray[np.float32]
    single_modal_score: NDArray[np.float32]
    rank_in_modality: NDArray[np.int32]
    text_embedding: NDArray[np.float32]
    visual_embedding: NDArray[np.float32]
    query_embedding: NDArray[np.float32]
    user_features: NDArray[np.float32]
    labels: NDArray[np.float32]
    input_versions: dict[str, int] = field(default_factory=dict)
    #: The single-modal model versions that scored these pages (silver.single_modal_scores).
    score_model_versions: tuple[str, ...] = ()
    feature_names: tuple[str, ...] = NUMERIC_FEATURE_NAMES
    encoder_name: str = DEFAULT_ENCODER_NAME

    def __post_init__(self) -> None:
        pages, items = len(self.page_id), len(self.item_id)
        if self.offsets.shape != (pages + 1,) or int(self.offsets[-1]) != items:
            raise ValueError(f"offsets {self.offsets.shape} do not fit {pages} pages / {items} items")
        if pages and int(np.diff(self.offsets).min()) < 1:
            raise ValueError("every page needs at least one item")
        for name in ("modality_id", "position", "single_modal_score", "rank_in_modality", "labels"):
            if len(getattr(self, name)) != items:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, expected {items}")
        for name in ("numeric", "text_embedding", "visual_embedding"):
            if getattr(self, name).shape[0] != items:
                raise ValueError(f"{name} has {getattr(self, name).shape[0]} rows, expected {items}")
        for name in ("page_ds", "query_id", "request_id", "query_embedding", "user_features"):
            if len(getattr(self, name)) != pages:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, expected {pages}")
        if self.numeric.shape[1] != len(self.feature_names):
            raise ValueError(f"numeric has {self.numeric.shape[1]} columns, names {len(self.feature_names)}")

    # -- sizes --------------------------------------------------------------------------------
    @property
    def n_pages(self) -> int:
        return len(self.page_id)

    @property
    def n_items(self) -> int:
        return len(self.item_id)

    @property
    def page_sizes(self) -> NDArray[np.int64]:
        return np.diff(self.offsets)

    @property
    def label_mask(self) -> NDArray[np.bool_]:
        return ~np.isnan(self.labels)

    @property
    def text_dim(self) -> int:
        return int(self.text_embedding.shape[1])

    @property
    def visual_dim(self) -> int:
        return int(self.visual_embedding.shape[1])

    @property
    def user_dim(self) -> int:
        return int(self.user_features.shape[1])

    @property
    def page_of_item(self) -> NDArray[np.int64]:
        """[N] page index of every item row."""
        return np.repeat(np.arange(self.n_pages), self.page_sizes)

    @property
    def query_splits(self) -> NDArray[np.object_]:
        """[P] the query split of every page (`smar.splits.query_split`)."""
        return np.array([query_split(str(query)) for query in self.query_id], dtype=object)

    # -- access -------------------------------------------------------------------------------
    def page(self, index: int) -> dict[str, Any]:
        """One page as numpy views: per-item arrays `[items, ...]`, per-page arrays as they are."""
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        labels = self.labels[start:stop]
        return {
            "page_index": index,
            "modality_id": self.modality_id[start:stop],
            "numeric": self.numeric[start:stop],
            "text_embedding": self.text_embedding[start:stop],
            "visual_embedding": self.visual_embedding[start:stop],
            "single_modal_score": self.single_modal_score[start:stop],
            "labels": labels,
            "query_embedding": self.query_embedding[index],
            "user_features": self.user_features[index],
        }

    def subset(self, page_indices: Sequence[int] | NDArray[np.integer]) -> PageStore:
        """The pages at `page_indices`, in that order."""
        indices = np.asarray(page_indices, dtype=np.int64)
        starts, stops = self.offsets[indices], self.offsets[indices + 1]
        rows = (
            np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])
            if len(indices)
            else np.zeros(0, dtype=np.int64)
        )
        offsets = np.concatenate([[0], np.cumsum(stops - starts)]).astype(np.int64)
        return PageStore(
            page_id=self.page_id[indices],
            page_ds=self.page_ds[indices],
            query_id=self.query_id[indices],
            request_id=self.request_id[indices],
            offsets=offsets,
            item_id=self.item_id[rows],
            modality_id=self.modality_id[rows],
            position=self.position[rows],
            numeric=self.numeric[rows],
            single_modal_score=self.single_modal_score[rows],
            rank_in_modality=self.rank_in_modality[rows],
            text_embedding=self.text_embedding[rows],
            visual_embedding=self.visual_embedding[rows],
            query_embedding=self.query_embedding[indices],
            user_features=self.user_features[indices],
            labels=self.labels[rows],
            input_versions=dict(self.input_versions),
            score_model_versions=self.score_model_versions,
            feature_names=self.feature_names,
            encoder_name=self.encoder_name,
        )

    def with_labels(self, labels: NDArray[np.floating]) -> PageStore:
        """The same pages with another label column ([N], NaN = unlabelled)."""
        values = np.asarray(labels, dtype=np.float32)
        if values.shape != (self.n_items,):
            raise ValueError(f"labels must be [{self.n_items}], got {values.shape}")
        return replace(self, labels=values)

    def labelled_pages(self) -> PageStore:
        """Only the pages with at least one labelled item."""
        has_label = np.add.reduceat(self.label_mask.astype(np.int64), self.offsets[:-1]) > 0
        return self.subset(np.flatnonzero(has_label))

    def first_page_per_query(self) -> PageStore:
        """One page per query (its earliest day, then first in store order): evaluation counts
        each query once however many days it was logged."""
        frame = pd.DataFrame({"query_id": self.query_id, "ds": self.page_ds, "index": np.arange(self.n_pages)})
        first = frame.sort_values(["query_id", "ds", "index"], kind="stable").drop_duplicates("query_id")
        return self.subset(np.sort(first["index"].to_numpy()))

    def pages_in_splits(self, splits: Sequence[str]) -> PageStore:
        """Only the pages whose query belongs to one of `splits`."""
        return self.subset(np.flatnonzero(np.isin(self.query_splits, list(splits))))

    def fingerprint(self) -> str:
        """sha256 over what the pages were made of: their ids, items, positions, ranks, labels,
        embeddings and user features, and the single-modal model versions that scored them. The
        same pages give the same value whatever the tables' Delta versions. The scores themselves
        are left out: a rescoring with the same model differs in the last bits (MiniLM batches
        vary), and the model version already says which scores they are."""
        digest = hashlib.sha256()
        for name in ("page_id", "page_ds", "query_id", "request_id", "item_id", "score_model_versions"):
            digest.update("\u001f".join(map(str, getattr(self, name))).encode("utf-8"))
        for name in ("offsets", "modality_id", "position", "rank_in_modality", "text_embedding",
                     "visual_embedding", "query_embedding", "user_features", "labels"):  # fmt: skip
            digest.update(np.ascontiguousarray(getattr(self, name)).tobytes())
        return digest.hexdigest()

    def item_frame(self) -> pd.DataFrame:
        """One row per item: page keys, item_id, modality, position, score, rank, label."""
        page_of_item = self.page_of_item
        return pd.DataFrame(
            {
                "page_id": self.page_id[page_of_item],
                "ds": self.page_ds[page_of_item],
                "query_id": self.query_id[page_of_item],
                "request_id": self.request_id[page_of_item],
                "item_id": self.item_id,
                "modality": np.array(MODALITIES, dtype=object)[self.modality_id],
                "position": self.position,
                "single_modal_score": self.single_modal_score,
                "rank_in_modality": self.rank_in_modality,
                "label": self.labels,
            }
        )


def grades_for_store(store: PageStore, grades: pd.DataFrame, *, by_query_only: bool = False) -> NDArray[np.float32]:
    """[N] grade of every item of `store` from a frame with (ds, query_id, item_id, grade);
    NaN where none. `by_query_only` matches on (query_id, item_id) whatever the day (the hidden
    truth of a query does not change across days)."""
    keys = ["query_id", "item_id"] if by_query_only else ["ds", "query_id", "item_id"]
    lookup = grades.drop_duplicates(keys).set_index(keys)["grade"]
    frame = store.item_frame()
    index = pd.MultiIndex.from_frame(frame[keys])
    return lookup.reindex(index).to_numpy(dtype=np.float32)


def attach_page_labels(store: PageStore, labels: pd.DataFrame) -> PageStore:
    """`store` with page labels (mean grade over annotators) on the items that have one, and
    page_id taken from the labels where they name one. Labelled items that are not candidates
    of the page are counted in the log (the page's candidates come from the scores table)."""
    grades = grades_for_store(store, labels)
    matched = int((~np.isnan(grades)).sum())
    in_scope = labels[labels["query_id"].isin(set(store.query_id)) & labels["ds"].isin(set(store.page_ds))]
    if len(in_scope) > matched:
        log.warning("%d page labels name items that are not candidates of their page; ignored", len(in_scope) - matched)
    page_ids = store.page_id.copy()
    if "page_id" in labels.columns and len(labels):
        named = labels.drop_duplicates(["ds", "query_id"]).set_index(["ds", "query_id"])["page_id"]
        found = named.reindex(pd.MultiIndex.from_arrays([store.page_ds, store.query_id])).to_numpy()
        page_ids = np.where(pd.isna(found), page_ids, found).astype(object)
    return replace(store.with_labels(grades), page_id=page_ids)


#: Chooses the 0-based positions to label in one ranked list: (strategy, n, budget, rng) -> positions.
PositionChooser = Callable[[str, int, float, np.random.Generator], NDArray[np.int64]]


def _annotation_positions(strategy: str, n_items: int, budget: float, rng: np.random.Generator) -> NDArray[np.int64]:
    return select_positions(strategy, n_items, budget, rng=rng)


def restrict_to_budget(
    store: PageStore,
    *,
    strategy: str,
    budget: float,
    seed: int = 0,
    choose: PositionChooser = _annotation_positions,
) -> PageStore:
    """Keep the labels of the items a budgeted annotation would have labelled: per page and
    modality, the positions `select_positions(strategy, n, budget)` of the single-modal ranked
    list of all n candidates (random: rng seeded by `seed`, pages in store order). Emulates
    lower budgets from a fuller annotation; an item chosen but never labelled stays unlabelled.
    `choose` replaces `select_positions` (lever experiments try placements the annotation step
    does not offer)."""
    rng = np.random.default_rng(seed)
    keep = np.zeros(store.n_items, dtype=bool)
    for page in range(store.n_pages):
        start, stop = int(store.offsets[page]), int(store.offsets[page + 1])
        modality_ids = store.modality_id[start:stop]
        ranks = store.rank_in_modality[start:stop]
        for modality in np.unique(modality_ids):
            rows = np.flatnonzero(modality_ids == modality)
            ordered = rows[np.argsort(ranks[rows], kind="stable")]
            chosen = choose(strategy, len(ordered), budget, rng)
            keep[start + ordered[chosen]] = True
    return store.with_labels(np.where(keep, store.labels, np.nan))


def anchor_offsets(store: PageStore, anchors: pd.DataFrame) -> list[NDArray[np.int64]]:
    """Per page, an [A, 2] array of (preferred, other) item offsets within the page: for every
    grade boundary g and modalities A != B, the item of A just above g (grade >= g) should
    outrank the item of B just below g (grade < g). Anchors are matched to pages by
    (ds, query_id); items that are not candidates of the page are skipped."""
    result: list[NDArray[np.int64]] = [np.zeros((0, 2), dtype=np.int64) for _ in range(store.n_pages)]
    if anchors.empty:
        return result
    by_page = {key: group for key, group in anchors.groupby(["ds", "query_id"], sort=False)}
    for page in range(store.n_pages):
        group = by_page.get((store.page_ds[page], store.query_id[page]))
        if group is None:
            continue
        start, stop = int(store.offsets[page]), int(store.offsets[page + 1])
        offset_of = {item: index for index, item in enumerate(store.item_id[start:stop])}
        pairs: list[tuple[int, int]] = []
        for _, boundary in group.groupby("grade_boundary", sort=True):
            above = boundary[boundary["side"] == "above"]
            below = boundary[boundary["side"] == "below"]
            for above_modality, above_item in zip(above["modality"], above["item_id"], strict=True):
                for below_modality, below_item in zip(below["modality"], below["item_id"], strict=True):
                    if above_modality == below_modality:
                        continue  # same-modality order is the intra-modal term's job
                    if above_item in offset_of and below_item in offset_of:
                        pairs.append((offset_of[above_item], offset_of[below_item]))
        if pairs:
            result[page] = np.asarray(sorted(set(pairs)), dtype=np.int64)
    return result

"""Shared helpers of the reranker tests: a fast stand-in text encoder, a tiny lakehouse with
stand-in scores and budgeted page labels, and synthetic page stores with a planted signal."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from smar.annotation.strategies import select_positions
from smar.lake import Lakehouse
from smar.reranker.store import NUMERIC_FEATURE_NAMES, PageStore
from smar.reranker.text_cache import register_text_encoder
from smar.single_modal.rankers.encoder import EncodedTexts
from smar.splits import query_split

DS = "2026-11-01"
HASH_ENCODER_NAME = "test-hash-encoder"
HASH_ENCODER_DIM = 8


class CountingHashEncoder:
    """Deterministic stand-in for MiniLM: a unit vector seeded by the text's hash. Counts the
    texts it encodes, so tests can check that each text is encoded once."""

    def __init__(self, dimension: int = HASH_ENCODER_DIM) -> None:
        self.dimension = dimension
        self.encoded = 0

    def __call__(self, texts: Sequence[object]) -> EncodedTexts:
        unique: dict[str, int] = {}
        index = np.array([unique.setdefault(str(text), len(unique)) for text in texts], dtype=np.int64)
        rows = []
        for text in unique:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            vector = np.random.default_rng(seed).normal(size=self.dimension)
            rows.append(vector / np.linalg.norm(vector))
        self.encoded += len(unique)
        embeddings = np.asarray(rows, dtype=np.float32).reshape(len(unique), self.dimension)
        return EncodedTexts(list(unique), embeddings, index)


register_text_encoder(HASH_ENCODER_NAME, CountingHashEncoder)


def build_tiny_lake(spark, lake: Lakehouse, days: Sequence[str] = (DS,)) -> None:
    """Ingest tiny generator days (seed 5) and write stand-in single-modal scores for them."""
    from smar.ingest.jobs import run_ingest
    from tests.fixtures_scores import write_standin_scores

    for ds in days:
        run_ingest(spark, lake, ds=ds, source="generator", size="tiny", seed=5, run_quality_checks=False)
        write_standin_scores(spark, lake, ds)


def budgeted_truth_labels(
    lake: Lakehouse,
    *,
    ds: str,
    budget: float,
    splits: Sequence[str],
    strategy: str = "top",
    query_ids: Sequence[str] | None = None,
    annotator: str = "test-annotator",
) -> pd.DataFrame:
    """Page-label rows (contract columns) graded from truth.relevance for the items that
    `select_positions(strategy, n, budget)` picks in each (query page, modality) list, ranked by
    mean stand-in score (ties by item id)."""
    scores = lake.read_arrow("silver.single_modal_scores").to_pandas()
    scores = scores[scores["ds"] == ds]
    scores = scores[scores["query_id"].map(query_split).isin(splits)]
    if query_ids is not None:
        scores = scores[scores["query_id"].isin(query_ids)]
    candidates = scores.groupby(["query_id", "item_id", "modality"], as_index=False)["score"].mean()
    truth = lake.read_arrow("truth.relevance").to_pandas()
    truth = truth[truth["ds"] == ds].set_index(["query_id", "item_id"])["grade"]
    rows = []
    stamp = datetime(2026, 11, 2, tzinfo=UTC)
    for (query, modality), group in candidates.groupby(["query_id", "modality"]):
        ranked = group.sort_values(["score", "item_id"], ascending=[False, True])
        for position in select_positions(strategy, len(ranked), budget, rng=np.random.default_rng(0)):
            item = ranked["item_id"].iloc[int(position)]
            rows.append(
                {
                    "ds": ds,
                    "task_id": f"t/{query}",
                    "page_id": f"page/{query}",
                    "query_id": query,
                    "item_id": item,
                    "modality": modality,
                    "annotator": annotator,
                    "grade": int(truth[(query, item)]),
                    "strategy": strategy,
                    "round": 0,
                    "annotated_at": stamp,
                    "source_file": "test",
                    "ingested_at": stamp,
                }
            )
    return pd.DataFrame(rows)


def write_labels(spark, lake: Lakehouse, labels: pd.DataFrame) -> None:
    """MERGE page-label rows into silver.page_labels."""
    schema = (
        "ds string, task_id string, page_id string, query_id string, item_id string, modality string, "
        "annotator string, grade int, strategy string, round int, annotated_at timestamp, "
        "source_file string, ingested_at timestamp"
    )
    rows = [
        tuple(row)
        for row in labels[
            [
                "ds",
                "task_id",
                "page_id",
                "query_id",
                "item_id",
                "modality",
                "annotator",
                "grade",
                "strategy",
                "round",
                "annotated_at",
                "source_file",
                "ingested_at",
            ]
        ].itertuples(index=False)
    ]
    lake.merge(spark.createDataFrame(rows, schema=schema), "silver.page_labels")


def synthetic_store(
    n_pages: int,
    *,
    seed: int = 0,
    text_dim: int = 4,
    min_items: int = 5,
    max_items: int = 9,
    label_fraction: float = 1.0,
) -> tuple[PageStore, np.ndarray]:
    """Pages with a planted signal: grade = clip(round(1.5 + 1.2 * quality + 1.5 * [modality is
    the page's intent]), 0, 4); the single-modal score is quality plus noise; the page's intent
    is a one-hot inside its query embedding. A reranker must combine both to beat the scores.
    Returns (store with labels on `label_fraction` of the items, all grades [N])."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(min_items, max_items + 1, size=n_pages)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    items = int(offsets[-1])
    modality = rng.integers(0, 4, size=items).astype(np.int64)
    intent = rng.integers(0, 4, size=n_pages)
    page_of_item = np.repeat(np.arange(n_pages), sizes)
    quality = rng.normal(size=items)
    grades = np.clip(np.rint(1.5 + 1.2 * quality + 1.5 * (modality == intent[page_of_item])), 0, 4)
    single_modal = quality + rng.normal(scale=0.3, size=items)
    numeric = np.zeros((items, len(NUMERIC_FEATURE_NAMES)), dtype=np.float32)
    numeric[:, 0] = single_modal
    query_embedding = np.zeros((n_pages, text_dim), dtype=np.float32)
    query_embedding[np.arange(n_pages), intent % text_dim] = 1.0
    labels = grades.astype(np.float32)
    if label_fraction < 1.0:
        labels = np.where(rng.random(items) < label_fraction, labels, np.nan).astype(np.float32)
    ranks = np.zeros(items, dtype=np.int32)
    for page in range(n_pages):
        for m in range(4):
            rows = np.flatnonzero((page_of_item == page) & (modality == m))
            ranks[rows[np.argsort(-single_modal[rows], kind="stable")]] = np.arange(1, len(rows) + 1)
    return PageStore(
        page_id=np.array([f"p{page}" for page in range(n_pages)], dtype=object),
        page_ds=np.full(n_pages, DS, dtype=object),
        query_id=np.array([f"q{page:04d}" for page in range(n_pages)], dtype=object),
        request_id=np.full(n_pages, "", dtype=object),
        offsets=offsets,
        item_id=np.array([f"i{row:05d}" for row in range(items)], dtype=object),
        modality_id=modality,
        position=np.ones(items, dtype=np.int32),
        numeric=numeric,
        single_modal_score=single_modal.astype(np.float32),
        rank_in_modality=ranks,
        text_embedding=np.zeros((items, text_dim), dtype=np.float32),
        visual_embedding=np.zeros((items, 2), dtype=np.float32),
        query_embedding=query_embedding,
        user_features=np.zeros((n_pages, 1), dtype=np.float32),
        labels=labels,
        encoder_name="synthetic",
    ), grades.astype(np.float32)

"""Ranker inputs built from pandas frames with the bronze columns (`search_logs`, `items`).

Every ranker takes a dict of float32 arrays, one row per impression, under these keys:

* `query_embedding` [N, 384]: MiniLM embedding of `query_text` (all modalities).
* `item_text_embedding` [N, 384]: MiniLM embedding of the item's title and body (all
  modalities: for images and videos this is their caption, the text the page shows with them).
* `visual_embedding` [N, D]: the item's `visual_embedding`, D read from the data (image, video).
* `engagement` [N, 7]: the item's engagement statistics, in `ENGAGEMENT_FEATURE_NAMES` order.
  The jobs append list-level statistics after these columns (`smar.single_modal.list_features`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray

from smar.single_modal.rankers.encoder import EncodedTexts, encode_unique, normalize_text
from smar.vocabulary import MODALITIES

logger = logging.getLogger(__name__)

QUERY_EMBEDDING = "query_embedding"
ITEM_TEXT_EMBEDDING = "item_text_embedding"
VISUAL_EMBEDDING = "visual_embedding"
ENGAGEMENT = "engagement"

#: Which kind of ranker serves each modality.
MODALITY_KIND: dict[str, Literal["text", "visual"]] = {
    "web": "text",
    "answer": "text",
    "image": "visual",
    "video": "visual",
}

#: The feature arrays each kind of ranker reads.
FEATURE_KEYS: dict[str, tuple[str, ...]] = {
    "text": (QUERY_EMBEDDING, ITEM_TEXT_EMBEDDING, ENGAGEMENT),
    "visual": (QUERY_EMBEDDING, ITEM_TEXT_EMBEDDING, VISUAL_EMBEDDING, ENGAGEMENT),
}

COUNT_COLUMNS: tuple[str, ...] = ("impression_count", "click_count", "like_count", "share_count")

#: Column order of the `engagement` array. Rates are Laplace-smoothed per impression,
#: (count + 1) / (impression_count + 2), so that a new item sits at 0.5 instead of 0/0.
ENGAGEMENT_FEATURE_NAMES: tuple[str, ...] = (
    "log1p_impression_count",
    "log1p_click_count",
    "log1p_like_count",
    "log1p_share_count",
    "smoothed_click_rate",  # (click_count + 1) / (impression_count + 2)
    "smoothed_like_rate",  # (like_count + 1) / (impression_count + 2)
    "smoothed_share_rate",  # (share_count + 1) / (impression_count + 2)
)
ENGAGEMENT_DIM = len(ENGAGEMENT_FEATURE_NAMES)

TextEncodeFunction = Callable[[Sequence[object]], EncodedTexts]


def modality_kind(modality: str) -> Literal["text", "visual"]:
    """ "text" for web and answer, "visual" for image and video; ValueError otherwise."""
    try:
        return MODALITY_KIND[modality]
    except KeyError:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}") from None


def engagement_features(
    items: pd.DataFrame, *, missing_counts: Literal["zero", "error"] = "zero"
) -> NDArray[np.float32]:
    """[N, 7] float32 engagement statistics in `ENGAGEMENT_FEATURE_NAMES` order.

    A null counter means "not counted yet": with `missing_counts="zero"` it counts as 0 and the
    number of such cells is logged; with "error" it raises. Negative counters always raise.
    """
    missing_columns = [column for column in COUNT_COLUMNS if column not in items.columns]
    if missing_columns:
        raise ValueError(f"engagement_features needs columns {missing_columns}")
    counts = items[list(COUNT_COLUMNS)].astype("float64")
    null_cells = counts.isna()
    if null_cells.to_numpy().any():
        if missing_counts == "error":
            row, column = _first_true(null_cells)
            raise ValueError(f"row {_describe_row(items, row)}: column {column!r} is null")
        logger.warning("engagement_features: %d null counter cells counted as 0", int(null_cells.to_numpy().sum()))
        counts = counts.fillna(0.0)
    negative = counts < 0
    if negative.to_numpy().any():
        row, column = _first_true(negative)
        raise ValueError(f"row {_describe_row(items, row)}: column {column!r} is negative ({counts.iloc[row][column]})")
    impressions, clicks, likes, shares = (counts[column].to_numpy() for column in COUNT_COLUMNS)
    smoothing_denominator = impressions + 2.0
    columns = [
        np.log1p(impressions),
        np.log1p(clicks),
        np.log1p(likes),
        np.log1p(shares),
        (clicks + 1.0) / smoothing_denominator,
        (likes + 1.0) / smoothing_denominator,
        (shares + 1.0) / smoothing_denominator,
    ]
    return np.stack(columns, axis=1).astype(np.float32).reshape(len(items), ENGAGEMENT_DIM)


def item_texts(items: pd.DataFrame) -> list[str]:
    """The text an item is encoded from: title and body joined by a newline, empty parts left
    out; an item with neither is "" (see `smar.single_modal.rankers.encoder` on empty text)."""
    titles = items["title"] if "title" in items.columns else pd.Series([None] * len(items))
    bodies = items["body"] if "body" in items.columns else pd.Series([None] * len(items))
    texts = []
    for title, body in zip(titles, bodies, strict=True):
        parts = [part for part in (normalize_text(title), normalize_text(body)) if part.strip()]
        texts.append("\n".join(parts))
    return texts


def visual_embedding_matrix(items: pd.DataFrame, *, dimension: int | None = None) -> NDArray[np.float32]:
    """[N, D] float32 from the `visual_embedding` list column. D is `dimension`, else the length
    of the first embedding; a null, ragged or non-finite embedding raises naming the row."""
    embeddings = items["visual_embedding"].tolist()
    if dimension is None:
        first = next((embedding for embedding in embeddings if embedding is not None), None)
        if first is None:
            raise ValueError("visual_embedding is null in every row; cannot infer its dimension")
        dimension = len(first)
    matrix = np.empty((len(embeddings), dimension), dtype=np.float32)
    for row, embedding in enumerate(embeddings):
        if embedding is None or (isinstance(embedding, float) and np.isnan(embedding)):
            raise ValueError(f"row {_describe_row(items, row)}: column 'visual_embedding' is null")
        values = np.asarray(embedding, dtype=np.float32)
        if values.shape != (dimension,):
            raise ValueError(
                f"row {_describe_row(items, row)}: column 'visual_embedding' has shape "
                f"{values.shape}, expected ({dimension},)"
            )
        if not np.isfinite(values).all():
            raise ValueError(f"row {_describe_row(items, row)}: column 'visual_embedding' is not finite")
        matrix[row] = values
    return matrix


_TOKEN_SEPARATOR = re.compile(r"[^0-9a-z]+")


def _terms(text: object) -> set[str]:
    """Distinct lower-case alphanumeric terms of `text` (None and NaN have none)."""
    return {term for term in _TOKEN_SEPARATOR.split(normalize_text(text).lower()) if term}


def query_term_coverage(query_texts: Sequence[object], item_text_values: Sequence[object]) -> NDArray[np.float32]:
    """[N, 1] share of each query's distinct terms that occur in its item's text.

    The "covered query term ratio" of the LETOR feature sets: an exact lexical match signal. A
    frozen sentence encoder blurs it (a caption that misses one of three query words still
    embeds close to the query), while relevance often hinges on exactly that word. A query
    with no terms has coverage 0."""
    if len(query_texts) != len(item_text_values):
        raise ValueError(f"{len(query_texts)} query texts but {len(item_text_values)} item texts")
    coverage = np.zeros((len(query_texts), 1), dtype=np.float32)
    for row, (query, item) in enumerate(zip(query_texts, item_text_values, strict=True)):
        query_terms = _terms(query)
        if query_terms:
            coverage[row, 0] = len(query_terms & _terms(item)) / len(query_terms)
    return coverage


def join_impressions_with_items(search_logs: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Impressions (left, order kept) with their item's title, body, visual embedding and
    counters. Joins on (ds, item_id) when both frames carry `ds`, else on item_id. Raises when an
    impression has no item row, when items repeat a key, or when the modalities disagree."""
    both_dated = "ds" in search_logs.columns and "ds" in items.columns
    keys = ["ds", "item_id"] if both_dated else ["item_id"]
    item_columns = [
        column
        for column in ("modality", "title", "body", "visual_embedding", *COUNT_COLUMNS)
        if column in items.columns
    ]
    right = items[keys + item_columns].rename(columns={"modality": "item_modality"})
    try:
        joined = search_logs.merge(right, on=keys, how="left", validate="many_to_one", indicator=True)
    except pd.errors.MergeError as error:
        raise ValueError(f"items must have one row per {keys}: {error}") from error
    unmatched = joined["_merge"] != "both"
    if unmatched.any():
        examples = joined.loc[unmatched, keys].head(3).to_dict("records")
        raise ValueError(f"{int(unmatched.sum())} impressions have no item row, e.g. {examples}")
    joined = joined.drop(columns="_merge")
    if "item_modality" in joined.columns:
        disagree = joined["item_modality"] != joined["modality"]
        if disagree.any():
            row = int(np.flatnonzero(disagree.to_numpy())[0])
            raise ValueError(
                f"row {_describe_row(joined, row)}: impression modality "
                f"{joined['modality'].iloc[row]!r} != item modality "
                f"{joined['item_modality'].iloc[row]!r}"
            )
        joined = joined.drop(columns="item_modality")
    return joined


def build_feature_arrays(
    impressions_with_items: pd.DataFrame,
    modality: str,
    *,
    encode: TextEncodeFunction | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> dict[str, NDArray[np.float32]]:
    """The feature dict of one modality's rows (output of `join_impressions_with_items`), row
    order kept. Each distinct query text and item text is encoded once (`encode`, default
    `encode_unique` with `batch_size` and `device`)."""
    kind = modality_kind(modality)
    other = impressions_with_items["modality"] != modality
    if other.any():
        row = int(np.flatnonzero(other.to_numpy())[0])
        raise ValueError(
            f"row {_describe_row(impressions_with_items, row)}: modality "
            f"{impressions_with_items['modality'].iloc[row]!r}, expected only {modality!r}"
        )
    if encode is None:

        def encode(texts: Sequence[object]) -> EncodedTexts:
            return encode_unique(texts, batch_size=batch_size, device=device)

    queries = encode(impressions_with_items["query_text"].tolist())
    item_text_encoding = encode(item_texts(impressions_with_items))
    features = {
        QUERY_EMBEDDING: queries.embeddings[queries.index],
        ITEM_TEXT_EMBEDDING: item_text_encoding.embeddings[item_text_encoding.index],
        ENGAGEMENT: engagement_features(impressions_with_items),
    }
    if kind == "visual":
        features[VISUAL_EMBEDDING] = visual_embedding_matrix(impressions_with_items)
    return {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in features.items()}


def _first_true(mask: pd.DataFrame) -> tuple[int, str]:
    """(row position, column name) of the first True cell of a boolean frame."""
    rows, columns = np.nonzero(mask.to_numpy())
    return int(rows[0]), str(mask.columns[columns[0]])


def _describe_row(frame: pd.DataFrame, row: int) -> str:
    """`row` by position, plus its request_id / item_id when the frame has them."""
    keys = [column for column in ("request_id", "item_id") if column in frame.columns]
    described = ", ".join(f"{key}={frame[key].iloc[row]!r}" for key in keys)
    return f"{row} ({described})" if described else str(row)

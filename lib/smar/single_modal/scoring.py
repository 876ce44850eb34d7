"""Scoring as Spark transforms: which impressions can be scored, the encode-once and scoring
pandas UDFs, and the output rows of `silver.single_modal_scores`.

1. impressions are joined to their items; rows that cannot be scored (no item row, a NaN or
   wrong-length visual embedding) get a reason (`unscorable_reason`);
2. each distinct query text and item text is encoded once by an iterator pandas UDF (the MiniLM
   encoder, cached per Python worker) and joined back (`encode_texts_udf`);
3. an iterator pandas UDF scores the impressions with the modality's ranker (its artifact's bytes
   travel inside the UDF, so an executor needs neither the driver's disk nor the artifact store;
   built once per worker, on the Spark task's GPU when it has one, in batches of `gpu_batch_size`
   rows, independent of Arrow's `maxRecordsPerBatch`) (`score_impressions_udf`);
4. ranks and percentiles within (request, modality) are native window functions (`ranked_scores`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from smar.single_modal.list_features import PRODUCTION_PERCENTILE, with_extra_statistics

SCORE_JOB = "score_single_modal"


def encode_texts_udf(encoder_batch_size: int, device: str) -> Any:
    """Iterator pandas UDF: texts -> unit-norm MiniLM embeddings (one row per input text)."""

    @F.pandas_udf("array<float>")  # type: ignore[call-overload]
    def encode_texts(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        from smar.single_modal.rankers.device import select_device
        from smar.single_modal.rankers.encoder import encode_unique

        resolved = select_device(device)
        for texts in batches:
            encoded = encode_unique(texts.tolist(), batch_size=encoder_batch_size, device=resolved)
            yield pd.Series(list(encoded.embeddings[encoded.index]))

    return encode_texts


def score_batch(
    frame: pd.DataFrame,
    rankers: str | Mapping[str, Mapping[str, bytes]],
    *,
    gpu_batch_size: int,
    device: str,
    digests: Mapping[str, str] | None = None,
) -> np.ndarray:
    """Scores of one batch of impressions (any modalities) with the cached rankers: `rankers` is
    a model version's folder (a location) or each modality's artifact files as bytes.

    `frame` columns: modality, query_text, item_text, query_embedding, item_text_embedding,
    visual_embedding, the item count columns and `production_score_percentile`. Used by the
    scoring UDF and, directly, by tests and benchmarks.
    """
    from smar.single_modal.rankers.artifacts import load_ranker_cached
    from smar.single_modal.rankers.device import select_device
    from smar.single_modal.rankers.features import (
        ENGAGEMENT,
        ITEM_TEXT_EMBEDDING,
        QUERY_EMBEDDING,
        VISUAL_EMBEDDING,
        engagement_features,
        modality_kind,
        query_term_coverage,
    )
    from smar.single_modal.rankers.training import score_frame

    resolved = select_device(device)
    scores = np.full(len(frame), np.nan, dtype=np.float64)
    for modality, positions in frame.groupby("modality", sort=True).indices.items():
        part = frame.iloc[positions]
        if isinstance(rankers, str):
            ranker = load_ranker_cached(rankers.rstrip("/") + "/" + modality, modality, device=resolved)
        else:
            digest = None if digests is None else digests[modality]
            ranker = load_ranker_cached(rankers[modality], modality, device=resolved, digest=digest)
        features = {
            QUERY_EMBEDDING: np.stack(part["query_embedding"].to_numpy()).astype(np.float32),
            ITEM_TEXT_EMBEDDING: np.stack(part["item_text_embedding"].to_numpy()).astype(np.float32),
            ENGAGEMENT: engagement_features(part),
        }
        features = with_extra_statistics(
            features,
            part[PRODUCTION_PERCENTILE].to_numpy(np.float32).reshape(-1, 1),
            query_term_coverage(part["query_text"].tolist(), part["item_text"].tolist()),
        )
        if modality_kind(modality) == "visual":
            features[VISUAL_EMBEDDING] = np.stack(part["visual_embedding"].to_numpy()).astype(np.float32)
        scores[positions] = score_frame(ranker.model, features, batch_size=gpu_batch_size, device=resolved)
    return scores


def score_impressions_udf(
    rankers: Mapping[str, Mapping[str, bytes]], gpu_batch_size: int, device: str
) -> tuple[Any, list[str]]:
    """Iterator pandas UDF over impression batches; each modality's artifact files travel inside
    it as bytes, and models are built once per worker (cached by the files' digest)."""
    from smar.single_modal.rankers.artifacts import files_digest

    artifacts = {modality: dict(files) for modality, files in rankers.items()}
    digests = {modality: files_digest(files) for modality, files in artifacts.items()}

    columns = [
        "modality",
        "query_text",
        "item_text",
        "query_embedding",
        "item_text_embedding",
        "visual_embedding",
        "impression_count",
        "click_count",
        "like_count",
        "share_count",
        PRODUCTION_PERCENTILE,
    ]

    @F.pandas_udf("double")  # type: ignore[call-overload]
    def score_impressions(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        for series in batches:
            frame = pd.DataFrame(dict(zip(columns, series, strict=True)))
            yield pd.Series(
                score_batch(frame, artifacts, gpu_batch_size=gpu_batch_size, device=device, digests=digests)
            )

    return score_impressions, columns


def unscorable_reason(visual_dimensions: dict[str, int]) -> Column:
    """Why an impression cannot be scored, or null: missing item, bad visual embedding."""
    visual = F.col("modality").isin(*visual_dimensions) if visual_dimensions else F.lit(False)
    expected = F.lit(None).cast("int")
    for modality, dimension in visual_dimensions.items():
        expected = F.when(F.col("modality") == modality, F.lit(dimension)).otherwise(expected)
    embedding = F.col("visual_embedding")
    return (
        F.when(
            F.col("item_found").isNull(),
            F.concat(F.lit("item '"), F.col("item_id"), F.lit("' not in bronze.items for this ds")),
        )
        .when(visual & embedding.isNull(), F.lit("visual_embedding is null"))
        .when(
            visual & (F.size(embedding) != expected),
            F.concat(
                F.lit("visual_embedding has length "),
                F.size(embedding).cast("string"),
                F.lit(", expected "),
                expected.cast("string"),
            ),
        )
        .when(visual & F.exists(embedding, lambda value: F.isnan(value)), F.lit("visual_embedding contains NaN"))
    )


def scoring_rejects(joined: DataFrame, *, ds: str, source: str) -> DataFrame:
    """The `unscorable` impressions of `joined`, shaped like `bronze.rejects`."""
    return joined.where(F.col("unscorable").isNotNull()).select(
        F.lit(ds).alias("ds"),
        F.lit(SCORE_JOB).alias("job"),
        F.lit("silver.single_modal_scores").alias("target_table"),
        F.lit(source).alias("source"),
        F.col("position").cast("long").alias("row_number"),
        F.concat(F.lit("request "), F.col("request_id"), F.lit(": "), F.col("unscorable")).alias("reason"),
        F.to_json(F.struct("request_id", "position", "item_id", "modality", "visual_embedding")).alias("raw_payload"),
        F.current_timestamp().alias("rejected_at"),
    )


def ranked_scores(scored: DataFrame, *, ds: str, model_version: str) -> DataFrame:
    """`silver.single_modal_scores` rows: the score, its rank (score desc, item_id asc) and its
    percentile (n - rank) / (n - 1) within (request, modality), 1 for a list of one."""
    group = Window.partitionBy("request_id", "modality")
    ranked = Window.partitionBy("request_id", "modality").orderBy(F.col("score").desc(), F.col("item_id").asc())
    n_in_group = F.count(F.lit(1)).over(group)
    rank = F.row_number().over(ranked)
    return scored.select(
        F.lit(ds).alias("ds"),
        "request_id",
        "query_id",
        "item_id",
        "modality",
        "position",
        "score",
        rank.alias("rank_in_modality"),
        F.when(n_in_group > 1, (n_in_group - rank) / (n_in_group - 1))
        .otherwise(F.lit(1.0))
        .alias("score_percentile_in_modality"),
        F.lit(model_version).alias("model_version"),
    )

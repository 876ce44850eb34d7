"""Step 1 of SMAR as jobs: train the single-modal rankers from clicks, then score every logged
impression of a day with its modality's ranker through pandas UDFs.

Training reads the bronze tables at pinned Delta versions through delta-rs (no Spark needed) and
records those versions with each model. Scoring runs in Spark:

1. impressions are joined to their items; rows that cannot be scored (no item row, a NaN or
   wrong-length visual embedding) go to `bronze.rejects` with the reason;
2. each distinct query text and item text is encoded once by an iterator pandas UDF (the MiniLM
   encoder, cached per Python worker) and joined back;
3. an iterator pandas UDF scores the impressions with the modality's ranker (loaded once per
   worker, on the Spark task's GPU when it has one, in batches of `gpu_batch_size` rows,
   independent of Arrow's `maxRecordsPerBatch`);
4. ranks and percentiles within (request, modality) are native window functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from smar.lake import Lakehouse
from smar.splits import describe_splits, query_bucket, query_split

log = logging.getLogger(__name__)

MODALITIES = ("web", "image", "video", "answer")
TRAIN_JOB = "train_single_modal"
SCORE_JOB = "score_single_modal"
CURRENT_POINTER = "CURRENT"
# Inside the single_modal_train split, buckets 32..39 validate (early stopping); 0..31 train.
RANKER_VALIDATION_BUCKETS = range(32, 40)
# Maximum epochs; the epoch with the best validation NDCG is kept. The small modalities (answers:
# about a thousand pairs over three demo days) make only a few optimiser steps per epoch, and 8
# epochs left them undertrained.
DEFAULT_EPOCHS = 20


@dataclass(frozen=True)
class RankerEvaluation:
    """NDCG@10 within modality on held-out queries, for the ranker and the two baselines, with
    95% paired-bootstrap intervals (queries resampled) of ranker minus each baseline."""

    modality: str
    queries: int
    ranker_ndcg_at_10: float
    production_ndcg_at_10: float
    popularity_ndcg_at_10: float
    label_source: str
    versus_production_ci: tuple[float, float] = (math.nan, math.nan)
    versus_popularity_ci: tuple[float, float] = (math.nan, math.nan)

    def beats(self, baseline: str) -> bool:
        """True when the interval of ranker minus `baseline` ("production" or "popularity")
        lies above 0: a win the test queries can tell apart from noise."""
        intervals = {"production": self.versus_production_ci, "popularity": self.versus_popularity_ci}
        if baseline not in intervals:
            raise ValueError(f"baseline must be one of {sorted(intervals)}, got {baseline!r}")
        low = intervals[baseline][0]
        return not math.isnan(low) and low > 0.0


@dataclass(frozen=True)
class TrainingSummary:
    model_version: str
    artifact_dir: Path
    input_versions: dict[str, int]
    evaluations: list[RankerEvaluation] = field(default_factory=list)


@dataclass(frozen=True)
class ScoringSummary:
    ds: str
    model_version: str
    scored: int
    rejected: int
    unique_query_texts: int
    unique_item_texts: int


def single_modal_dir(lake: Lakehouse) -> Path:
    return lake.settings.artifacts.resolve() / "single_modal"


def current_model_version(lake: Lakehouse) -> str:
    """The model version `score` uses by default (written last by training)."""
    pointer = single_modal_dir(lake) / CURRENT_POINTER
    if not pointer.is_file():
        raise FileNotFoundError(
            f"no single-modal rankers registered: {pointer} is missing; run `smar train-single-modal` first"
        )
    return pointer.read_text().strip()


def item_text_column() -> Column:
    """Title and body joined by a newline, empty parts left out (as `rankers.features.item_texts`)."""
    parts = F.array(F.col("title"), F.col("body"))
    kept = F.filter(parts, lambda part: part.isNotNull() & (F.trim(part) != ""))
    return F.array_join(kept, "\n")


# -- the production score as a feature --------------------------------------------------------------
#
# The logged production score is each modality's incumbent ranker. Its raw scale differs per
# modality and per ranker release, so the rankers see its percentile inside (request, modality):
# (rank - 1) / (n - 1) with rank 1 = lowest score (Spark's percent_rank), 0.5 when the score is
# missing (e.g. Qilin logs carry none) or the list has one item. Stacking it with content and
# engagement features is what lets a click-trained ranker improve on the incumbent instead of
# relearning it.
PRODUCTION_PERCENTILE = "production_score_percentile"


def production_percentile(frame: pd.DataFrame) -> np.ndarray:
    """[N, 1] float32 percentile of `production_score` within (request_id, modality)."""
    scores = frame["production_score"].astype(float)
    groups = [frame["request_id"], frame["modality"]]
    rank = scores.groupby(groups).rank(method="min")
    size = scores.groupby(groups).transform("count")
    percentile = ((rank - 1) / (size - 1)).where(size > 1)
    return percentile.fillna(0.5).to_numpy(dtype=np.float32).reshape(-1, 1)


def production_percentile_column() -> Column:
    """The same percentile as a Spark window expression."""
    window = Window.partitionBy("request_id", "modality").orderBy(F.col("production_score").asc())
    known = F.col("production_score").isNotNull() & ~F.isnan(F.col("production_score"))
    size = F.count(F.when(known, F.lit(1))).over(Window.partitionBy("request_id", "modality"))
    # Nulls sort first in ascending order; rank among known scores only.
    rank_among_known = F.rank().over(window) - (F.count(F.lit(1)).over(Window.partitionBy("request_id", "modality")) - size)
    return F.when(known & (size > 1), (rank_among_known - 1) / (size - 1)).otherwise(F.lit(0.5))


#: What the jobs append to the rankers' `engagement` array, in this order. Both depend on the
#: (query, item) pair or the list, not on the item alone.
EXTRA_STATISTICS = ("production_score_percentile", "query_term_coverage")


def with_extra_statistics(
    features: dict[str, np.ndarray], percentile: np.ndarray, coverage: np.ndarray
) -> dict[str, np.ndarray]:
    """Append the production percentile and the query term coverage (each [N, 1]) as the last
    engagement columns (`EXTRA_STATISTICS`)."""
    from smar.rankers.features import ENGAGEMENT

    extended = dict(features)
    extended[ENGAGEMENT] = np.concatenate([features[ENGAGEMENT], percentile, coverage], axis=1).astype(np.float32)
    return extended


def ranker_features(rows: pd.DataFrame, modality: str, *, encoder_batch_size: int) -> dict[str, np.ndarray]:
    """The full feature dict of one modality's impressions joined with their items (training
    and evaluation; scoring assembles the same arrays from Spark columns in `score_batch`)."""
    from smar.rankers.features import build_feature_arrays, item_texts, query_term_coverage

    return with_extra_statistics(
        build_feature_arrays(rows, modality, batch_size=encoder_batch_size),
        production_percentile(rows),
        query_term_coverage(rows["query_text"].tolist(), item_texts(rows)),
    )


# -- training ------------------------------------------------------------------------------------


def _per_query_ndcg(frame: pd.DataFrame, score_column: str, grade_column: str) -> pd.Series:
    """NDCG@10 of each (query, modality) list of distinct (query, item) rows; lists without a
    relevant item (ideal DCG 0) are left out."""
    from smar.metrics import ndcg_at

    values = {}
    for key, group in frame.groupby(["query_id", "modality"], sort=True):
        value = ndcg_at(group[grade_column].to_numpy(), group[score_column].to_numpy(), k=10,
                        doc_ids=group["item_id"].to_numpy(), empty=None)
        if not math.isnan(value):
            values[key] = value
    return pd.Series(values, dtype=float)


def evaluate_against_baselines(frame: pd.DataFrame, modality: str, label_source: str, *, seed: int) -> RankerEvaluation:
    """NDCG@10 of the `ranker`, `production` and `popularity` columns of `frame` against its
    `grade` column, with paired-bootstrap intervals of ranker minus each baseline."""
    from smar.replay.bootstrap import BootstrapConfig, paired_delta

    ranker = _per_query_ndcg(frame, "ranker", "grade")
    production = _per_query_ndcg(frame, "production", "grade")
    popularity = _per_query_ndcg(frame, "popularity", "grade")
    config = BootstrapConfig(seed=seed)
    versus_production = paired_delta(production.to_numpy(), ranker.to_numpy(), config=config)
    versus_popularity = paired_delta(popularity.to_numpy(), ranker.to_numpy(), config=config)
    return RankerEvaluation(
        modality=modality,
        queries=len(ranker),
        ranker_ndcg_at_10=float(ranker.mean()) if len(ranker) else math.nan,
        production_ndcg_at_10=float(production.mean()) if len(production) else math.nan,
        popularity_ndcg_at_10=float(popularity.mean()) if len(popularity) else math.nan,
        label_source=label_source,
        versus_production_ci=(versus_production.ci_low, versus_production.ci_high),
        versus_popularity_ci=(versus_popularity.ci_low, versus_popularity.ci_high),
    )


def train_single_modal(
    lake: Lakehouse,
    *,
    ds_list: list[str],
    seed: int = 0,
    epochs: int | None = None,
    batch_size: int = 256,
    device: str = "auto",
    encoder_batch_size: int = 64,
) -> TrainingSummary:
    """Train one ranker per modality on the `single_modal_train` queries of `ds_list`.

    Labels are preferences from clicks and dwell (`rankers.training.preference_labels`); the loss
    is the pairwise hinge (margin 1) inside each (request, modality). Validation (early stopping)
    uses held-out buckets of the same split; the reported evaluation uses the `test` queries,
    against hidden truth when `truth.relevance` exists, else against clicks.
    """
    import torch

    from smar.rankers.artifacts import RankerMetadata, save_ranker
    from smar.rankers.features import join_impressions_with_items
    from smar.rankers.models import default_config
    from smar.rankers.training import ValidationData, preference_labels, score_frame, train_ranker

    epochs = DEFAULT_EPOCHS if epochs is None else epochs

    filters = [("ds", "in", ds_list)]
    versions = {name: lake.version(name) for name in ("bronze.search_logs", "bronze.items")}
    # Sorted: Delta file order is not stable across rewrites, and pair sampling follows row order.
    logs = (
        lake.read_arrow("bronze.search_logs", version=versions["bronze.search_logs"], filters=filters)
        .to_pandas()
        .sort_values(["ds", "request_id", "position"], kind="stable")
        .reset_index(drop=True)
    )
    items = (
        lake.read_arrow("bronze.items", version=versions["bronze.items"], filters=filters)
        .to_pandas()
        .sort_values(["ds", "item_id"], kind="stable")
        .reset_index(drop=True)
    )
    if logs.empty:
        raise ValueError(f"bronze.search_logs has no rows for ds in {ds_list}")
    truth = None
    if lake.exists("truth.relevance"):
        versions["truth.relevance"] = lake.version("truth.relevance")
        truth = lake.read_arrow("truth.relevance", version=versions["truth.relevance"], filters=filters).to_pandas()
        truth = truth.drop_duplicates(["query_id", "item_id"])[["query_id", "item_id", "grade"]]

    logs["split"] = logs["query_id"].map(query_split)
    logs["bucket"] = logs["query_id"].map(query_bucket)
    joined = join_impressions_with_items(logs, items.drop_duplicates(["ds", "item_id"]))
    identity = json.dumps({"ds": sorted(ds_list), "versions": versions, "seed": seed, "epochs": epochs,
                           "extra_statistics": EXTRA_STATISTICS}, sort_keys=True)
    model_version = "sm-" + hashlib.sha256(identity.encode()).hexdigest()[:12]
    artifact_dir = single_modal_dir(lake) / model_version
    torch.manual_seed(seed)

    evaluations = []
    for modality in MODALITIES:
        rows = joined[joined["modality"] == modality].reset_index(drop=True)
        if rows.empty:
            raise ValueError(f"no impressions of modality {modality!r} in ds {ds_list}: cannot train its ranker")
        train_rows = rows[
            (rows.split == "single_modal_train") & ~rows.bucket.isin(RANKER_VALIDATION_BUCKETS)
        ].reset_index(drop=True)
        valid_rows = rows[(rows.split == "single_modal_train") & rows.bucket.isin(RANKER_VALIDATION_BUCKETS)]
        test_rows = _first_request_per_query(rows[rows.split == "test"])
        train_features = ranker_features(train_rows, modality, encoder_batch_size=encoder_batch_size)
        validation = None
        if not valid_rows.empty:
            valid_unique = _first_request_per_query(valid_rows)
            grades = _grades(valid_unique, truth)
            validation = ValidationData(
                features=ranker_features(valid_unique, modality, encoder_batch_size=encoder_batch_size),
                grades=grades,
                group_ids=valid_unique["query_id"].to_numpy(),
            )
        model, history = train_ranker(
            modality,
            train_features,
            train_rows["request_id"].to_numpy(),
            preference_labels(train_rows),
            config=default_config(
                modality,
                visual_dim=train_features.get("visual_embedding", np.zeros((0, 0))).shape[1] or None,
                engagement_dim=train_features["engagement"].shape[1],
            ),
            seed=seed,
            epochs=epochs,
            batch_size=batch_size,
            device=device,
            validation=validation,
        )
        evaluation_frame = test_rows.copy()
        evaluation_frame["grade"] = _grades(test_rows, truth)
        test_features = ranker_features(test_rows, modality, encoder_batch_size=encoder_batch_size)
        evaluation_frame["ranker"] = score_frame(model, test_features, device=device)
        evaluation_frame["production"] = evaluation_frame["production_score"].fillna(-np.inf)
        evaluation_frame["popularity"] = evaluation_frame["click_count"].fillna(0).astype(float)
        evaluation = evaluate_against_baselines(
            evaluation_frame, modality, "truth.relevance" if truth is not None else "clicks", seed=seed
        )
        evaluations.append(evaluation)
        metadata = RankerMetadata(
            model_version=model_version,
            modality=modality,
            training_table_versions=versions,
            validation_metrics={
                "best_validation_ndcg_at_10": max((h.get("validation_ndcg_at_10", float("nan")) for h in history), default=float("nan")),
                "test_ndcg_at_10": evaluation.ranker_ndcg_at_10,
                "test_production_ndcg_at_10": evaluation.production_ndcg_at_10,
                "test_popularity_ndcg_at_10": evaluation.popularity_ndcg_at_10,
                "test_minus_production_ci95": list(evaluation.versus_production_ci),
                "test_minus_popularity_ci95": list(evaluation.versus_popularity_ci),
                "test_queries": evaluation.queries,
            },
            query_split={
                **describe_splits(),
                "train": "single_modal_train, buckets 0-31",
                "validation": "single_modal_train, buckets 32-39",
                "evaluation": "test",
                "training_days": sorted(ds_list),
                "label_source": evaluation.label_source,
            },
        )
        save_ranker(model, artifact_dir / modality, metadata=metadata)
        log.info("trained %s ranker %s: %s", modality, model_version, evaluation)
    # The pointer is written last: a half-trained version is never picked up by scoring.
    (single_modal_dir(lake) / CURRENT_POINTER).write_text(model_version + "\n")
    return TrainingSummary(model_version, artifact_dir, versions, evaluations)


def _first_request_per_query(rows: pd.DataFrame) -> pd.DataFrame:
    """One logged page per query (its first request): the list a ranker is evaluated on."""
    first = rows.groupby("query_id")["request_id"].transform("min")
    return rows[rows["request_id"] == first].reset_index(drop=True)


def _grades(rows: pd.DataFrame, truth: pd.DataFrame | None) -> np.ndarray:
    """Hidden grades for demo data; clicks (0/1, max over requests) on real logs."""
    if truth is not None:
        merged = rows[["query_id", "item_id"]].merge(truth, on=["query_id", "item_id"], how="left")
        return merged["grade"].fillna(0).to_numpy(dtype=float)
    return rows["clicked"].fillna(0).to_numpy(dtype=float)


# -- scoring -------------------------------------------------------------------------------------


def _encode_udf(encoder_batch_size: int, device: str):
    """Iterator pandas UDF: texts -> unit-norm MiniLM embeddings (one row per input text)."""

    @F.pandas_udf("array<float>")
    def encode_texts(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        from smar.rankers.device import select_device
        from smar.rankers.encoder import encode_unique

        resolved = select_device(device)
        for texts in batches:
            encoded = encode_unique(texts.tolist(), batch_size=encoder_batch_size, device=resolved)
            yield pd.Series(list(encoded.embeddings[encoded.index]))

    return encode_texts


def score_batch(
    frame: pd.DataFrame, model_dir: str, *, gpu_batch_size: int, device: str
) -> np.ndarray:
    """Scores of one batch of impressions (any modalities) with the cached rankers.

    `frame` columns: modality, query_text, item_text, query_embedding, item_text_embedding,
    visual_embedding, the item count columns and `production_score_percentile`. Used by the
    scoring UDF and, directly, by tests and benchmarks.
    """
    from smar.rankers.artifacts import load_ranker_cached
    from smar.rankers.device import select_device
    from smar.rankers.features import (
        ENGAGEMENT,
        ITEM_TEXT_EMBEDDING,
        QUERY_EMBEDDING,
        VISUAL_EMBEDDING,
        engagement_features,
        modality_kind,
        query_term_coverage,
    )
    from smar.rankers.training import score_frame

    resolved = select_device(device)
    scores = np.full(len(frame), np.nan, dtype=np.float64)
    for modality, positions in frame.groupby("modality", sort=True).indices.items():
        part = frame.iloc[positions]
        ranker = load_ranker_cached(Path(model_dir) / modality, modality, device=resolved)
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


def _score_udf(model_dir: str, gpu_batch_size: int, device: str):
    """Iterator pandas UDF over impression batches; models load once per worker (cached)."""

    columns = ["modality", "query_text", "item_text", "query_embedding", "item_text_embedding", "visual_embedding",
               "impression_count", "click_count", "like_count", "share_count", PRODUCTION_PERCENTILE]

    @F.pandas_udf("double")
    def score_impressions(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        for series in batches:
            frame = pd.DataFrame(dict(zip(columns, series, strict=True)))
            yield pd.Series(score_batch(frame, model_dir, gpu_batch_size=gpu_batch_size, device=device))

    return score_impressions, columns


def unscorable_reason(visual_dimensions: dict[str, int]) -> Column:
    """Why an impression cannot be scored, or null: missing item, bad visual embedding."""
    visual = F.col("modality").isin(*visual_dimensions) if visual_dimensions else F.lit(False)
    expected = F.lit(None).cast("int")
    for modality, dimension in visual_dimensions.items():
        expected = F.when(F.col("modality") == modality, F.lit(dimension)).otherwise(expected)
    embedding = F.col("visual_embedding")
    return (
        F.when(F.col("item_found").isNull(), F.concat(F.lit("item '"), F.col("item_id"), F.lit("' not in bronze.items for this ds")))
        .when(visual & embedding.isNull(), F.lit("visual_embedding is null"))
        .when(
            visual & (F.size(embedding) != expected),
            F.concat(F.lit("visual_embedding has length "), F.size(embedding).cast("string"),
                     F.lit(", expected "), expected.cast("string")),
        )
        .when(visual & F.exists(embedding, lambda value: F.isnan(value)), F.lit("visual_embedding contains NaN"))
    )


def score_single_modal(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    model_version: str | None = None,
    gpu_batch_size: int = 1024,
    encoder_batch_size: int = 64,
    device: str = "auto",
) -> ScoringSummary:
    """Score every impression of `ds`; write `silver.single_modal_scores` and the rejects."""
    from smar.rankers.artifacts import load_ranker

    model_version = model_version or current_model_version(lake)
    model_dir = single_modal_dir(lake) / model_version
    logs = lake.read("bronze.search_logs").where(F.col("ds") == ds)
    present = sorted(row.modality for row in logs.select("modality").distinct().collect())
    if not present:
        raise ValueError(f"bronze.search_logs has no impressions for ds={ds}")
    # Fail before any write when a modality has no usable model (clear error names path and modality).
    visual_dimensions: dict[str, int] = {}
    for modality in present:
        loaded = load_ranker(model_dir / modality, modality)
        if loaded.config.kind == "visual":
            visual_dimensions[modality] = loaded.config.item_dim

    items = (
        lake.read("bronze.items")
        .where(F.col("ds") == ds)
        .select("item_id", "title", "body", "visual_embedding", "impression_count", "click_count",
                "like_count", "share_count", F.lit(True).alias("item_found"))
        .dropDuplicates(["item_id"])
    )
    joined = logs.join(items, on="item_id", how="left").withColumn("unscorable", unscorable_reason(visual_dimensions))

    rejects = joined.where(F.col("unscorable").isNotNull()).select(
        F.lit(ds).alias("ds"),
        F.lit(SCORE_JOB).alias("job"),
        F.lit("silver.single_modal_scores").alias("target_table"),
        F.lit(f"bronze.search_logs@{lake.version('bronze.search_logs')}").alias("source"),
        F.col("position").cast("long").alias("row_number"),
        F.concat(F.lit("request "), F.col("request_id"), F.lit(": "), F.col("unscorable")).alias("reason"),
        F.to_json(F.struct("request_id", "position", "item_id", "modality", "visual_embedding")).alias("raw_payload"),
        F.current_timestamp().alias("rejected_at"),
    )
    scorable = (
        joined.where(F.col("unscorable").isNull())
        .withColumn("item_text", item_text_column())
        .withColumn(PRODUCTION_PERCENTILE, production_percentile_column())
    )

    encode = _encode_udf(encoder_batch_size, device)
    query_texts = scorable.select("query_text").distinct()
    query_embeddings = query_texts.select("query_text", encode(F.col("query_text")).alias("query_embedding"))
    # Every modality's item text: web pages and answers are ranked on it, images and videos on
    # their caption next to the visual embedding.
    item_texts = scorable.select("item_text").distinct()
    item_embeddings = item_texts.select("item_text", encode(F.col("item_text")).alias("item_text_embedding"))

    features = scorable.join(query_embeddings, on="query_text", how="left").join(item_embeddings, on="item_text", how="left")
    score_impressions, columns = _score_udf(str(model_dir), gpu_batch_size, device)
    scored = features.withColumn("score", score_impressions(*[F.col(c) for c in columns]))

    group = Window.partitionBy("request_id", "modality")
    ranked = Window.partitionBy("request_id", "modality").orderBy(F.col("score").desc(), F.col("item_id").asc())
    n_in_group = F.count(F.lit(1)).over(group)
    rank = F.row_number().over(ranked)
    output = scored.select(
        F.lit(ds).alias("ds"),
        "request_id",
        "query_id",
        "item_id",
        "modality",
        "position",
        "score",
        rank.alias("rank_in_modality"),
        F.when(n_in_group > 1, (n_in_group - rank) / (n_in_group - 1)).otherwise(F.lit(1.0)).alias("score_percentile_in_modality"),
        F.lit(model_version).alias("model_version"),
    )
    lake.overwrite_slice(output, "silver.single_modal_scores", {"ds": ds})
    lake.overwrite_slice(rejects, "bronze.rejects", {"ds": ds, "job": SCORE_JOB})
    scores_table = lake.read_arrow("silver.single_modal_scores", filters=[("ds", "=", ds)])
    rejected = lake.read_arrow("bronze.rejects", filters=[("ds", "=", ds), ("job", "=", SCORE_JOB)]).num_rows
    return ScoringSummary(
        ds=ds,
        model_version=model_version,
        scored=scores_table.num_rows,
        rejected=rejected,
        unique_query_texts=query_texts.count(),
        unique_item_texts=item_texts.count(),
    )

"""Job bodies of step 1: train the single-modal rankers from clicks, then score every logged
impression of a day with its modality's ranker through pandas UDFs.

Training reads the bronze tables at pinned Delta versions through delta-rs (no Spark needed) and
records those versions with each model. Scoring runs in Spark (`smar.single_modal.scoring`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from smar.errors import InputRefused
from smar.frames import content_fingerprint
from smar.ingest.jobs import completed_ingest
from smar.lake import Lakehouse
from smar.sampling import sample_dataset_queries
from smar.single_modal.evaluation import (
    RankerEvaluation,
    evaluate_against_baselines,
    first_request_per_query,
    grades_of,
)
from smar.single_modal.list_features import (
    EXTRA_STATISTICS,
    PRODUCTION_PERCENTILE,
    item_text_column,
    production_percentile_column,
    ranker_features,
)
from smar.single_modal.registry import current_model_version, model_version_dir, model_version_of, publish_current
from smar.single_modal.scoring import (
    SCORE_JOB,
    encode_texts_udf,
    ranked_scores,
    score_impressions_udf,
    scoring_rejects,
    unscorable_reason,
)
from smar.splits import describe_splits, query_bucket, query_split
from smar.storage.uris import display, join
from smar.vocabulary import MODALITIES, parse_day

log = logging.getLogger(__name__)

TRAIN_JOB = "train_single_modal"
# Inside the single_modal_train split, buckets 32..39 validate (early stopping); 0..31 train.
RANKER_VALIDATION_BUCKETS = range(32, 40)
#: The query splits single-modal training reads: it trains (and early-stops) on one, evaluates on the other.
TRAINING_SPLITS: tuple[str, ...] = ("single_modal_train", "test")
# Maximum epochs; the epoch with the best validation NDCG is kept. The small modalities (answers:
# about a thousand pairs over three demo days) make only a few optimiser steps per epoch, and 8
# epochs left them undertrained.
DEFAULT_EPOCHS = 20


@dataclass(frozen=True)
class TrainingSummary:
    model_version: str
    artifact_dir: str  # URI of the model version's folder
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

    from smar.single_modal.rankers.artifacts import RankerMetadata, save_ranker
    from smar.single_modal.rankers.features import join_impressions_with_items
    from smar.single_modal.rankers.models import default_config
    from smar.single_modal.rankers.training import (
        ValidationData,
        inverse_propensity_weights,
        preference_labels,
        score_frame,
        train_ranker,
    )

    epochs = DEFAULT_EPOCHS if epochs is None else epochs

    versions = {name: lake.version(name) for name in ("bronze.search_logs", "bronze.items")}
    # Only the queries training and evaluation use, at most max_training_queries of each split
    # (smar.sampling): the rows read are bounded by the sample, not by the window.
    sample = sample_dataset_queries(
        lake.dataset("bronze.search_logs", versions["bronze.search_logs"]),
        ds_values=ds_list, splits=TRAINING_SPLITS, max_per_split=lake.settings.max_training_queries,
        what="train-single-modal",
    )  # fmt: skip
    query_ids = sample.ids()
    if not query_ids:
        raise InputRefused(f"bronze.search_logs has no {' or '.join(TRAINING_SPLITS)} queries for ds in {ds_list}")
    filters = [("ds", "in", ds_list), ("query_id", "in", query_ids)]
    # Sorted: Delta file order is not stable across rewrites, and pair sampling follows row order.
    logs = (
        lake.read_arrow("bronze.search_logs", version=versions["bronze.search_logs"], filters=filters)
        .to_pandas()
        .sort_values(["ds", "request_id", "position"], kind="stable")
        .reset_index(drop=True)
    )
    if logs.empty:
        raise InputRefused(f"bronze.search_logs has no rows for ds in {ds_list}")
    shown_items = sorted(set(logs["item_id"].dropna()))
    items = (
        lake.read_arrow(
            "bronze.items",
            version=versions["bronze.items"],
            filters=[("ds", "in", ds_list), ("item_id", "in", shown_items)],
        )
        .to_pandas()
        .sort_values(["ds", "item_id"], kind="stable")
        .reset_index(drop=True)
    )
    truth = None
    if lake.exists("truth.relevance"):
        versions["truth.relevance"] = lake.version("truth.relevance")
        truth = lake.read_arrow("truth.relevance", version=versions["truth.relevance"], filters=filters).to_pandas()
        # Sorted before the first grade per (query, item) is kept, as the logs are: the file order
        # differs between engines (delta-spark and pysail write other files), and the version hashes these rows.
        truth = truth.sort_values(["ds", "query_id", "item_id"], kind="stable").drop_duplicates(["query_id", "item_id"])
        truth = truth[["query_id", "item_id", "grade"]].reset_index(drop=True)

    debias = lake.settings.ranker_position_debias
    examination = None
    if debias == "inverse_propensity":
        from smar.propensities import estimate_examination_curve

        # The curve comes from the randomised pages among the rows read; a window without them
        # cannot be debiased, and that is an error (PropensityFitError says why), not a silent
        # fallback to the biased loss. Only the point curve is used; the (vectorised, cheap)
        # bootstrap refits are kept as the fit's stability check, the same one the replay applies.
        curve, _, _ = estimate_examination_curve(logs, n_bootstrap=100, seed=seed)
        examination = curve.examination
        log.info("train-single-modal: pairs weighted by 1 / P(examined | slot), gamma = %s", np.round(examination, 3))
    logs["split"] = logs["query_id"].map(query_split)
    logs["bucket"] = logs["query_id"].map(query_bucket)
    joined = join_impressions_with_items(logs, items.drop_duplicates(["ds", "item_id"]))
    # Named by the rows read, not the tables' versions: a rerun on the same data (which rewrites
    # the same rows at new versions) trains the same version and registers nothing new.
    model_version = model_version_of(
        {
            "ds": sorted(ds_list),
            "rows": content_fingerprint(logs, items, truth if truth is not None else pd.DataFrame()),
            "seed": seed,
            "epochs": epochs,
            "extra_statistics": EXTRA_STATISTICS,
            # Only when on, so that the versions of rankers trained without it do not change.
            **({"position_debias": debias} if debias != "none" else {}),
        }
    )
    artifact_dir = model_version_dir(lake, model_version)
    torch.manual_seed(seed)

    evaluations = []
    for modality in MODALITIES:
        rows = joined[joined["modality"] == modality].reset_index(drop=True)
        if rows.empty:
            raise InputRefused(f"no impressions of modality {modality!r} in ds {ds_list}: cannot train its ranker")
        train_rows = rows[
            (rows.split == "single_modal_train") & ~rows.bucket.isin(RANKER_VALIDATION_BUCKETS)
        ].reset_index(drop=True)
        valid_rows = rows[(rows.split == "single_modal_train") & rows.bucket.isin(RANKER_VALIDATION_BUCKETS)]
        test_rows = first_request_per_query(rows[rows.split == "test"])
        train_features = ranker_features(train_rows, modality, encoder_batch_size=encoder_batch_size)
        validation = None
        if not valid_rows.empty:
            valid_unique = first_request_per_query(valid_rows)
            grades = grades_of(valid_unique, truth)
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
            row_weights=(
                None if examination is None else inverse_propensity_weights(train_rows["position"], examination)
            ),
        )
        evaluation_frame = test_rows.copy()
        evaluation_frame["grade"] = grades_of(test_rows, truth)
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
                "best_validation_ndcg_at_10": max(
                    (h.get("validation_ndcg_at_10", float("nan")) for h in history), default=float("nan")
                ),
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
                "sample": sample.describe(),
                "label_source": evaluation.label_source,
                "position_debias": debias,
            },
        )
        save_ranker(model, join(artifact_dir, modality), metadata=metadata)
        log.info("trained %s ranker %s: %s", modality, model_version, evaluation)
    # The pointer is written last: a half-trained version is never picked up by scoring.
    publish_current(lake, model_version)
    return TrainingSummary(model_version, artifact_dir, versions, evaluations)


def score_single_modal(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    model_version: str | None = None,
    gpu_batch_size: int = 1024,
    encoder_batch_size: int = 64,
    device: str = "auto",
    max_reject_fraction: float | None = None,
) -> ScoringSummary:
    """Score every impression of `ds`; write `silver.single_modal_scores` and the rejects.

    The day must have a completed ingest (`bronze.ingest_runs`): a half-ingested day is refused.
    Above `max_reject_fraction` (default: the settings') of unscorable impressions, only the
    rejects are written and `InputRefused` is raised: the day's previous scores stay."""
    from smar.single_modal.rankers.artifacts import ranker_from_files, read_ranker_files

    parse_day(ds)
    if not completed_ingest(lake, ds):
        raise InputRefused(
            f"ds={ds} has no completed ingest in bronze.ingest_runs (never ingested, or an ingest "
            "stopped half way); run `smar ingest` for the day first"
        )
    threshold = lake.settings.max_reject_fraction if max_reject_fraction is None else max_reject_fraction
    model_version = model_version or current_model_version(lake)
    model_dir = model_version_dir(lake, model_version)
    logs = lake.read("bronze.search_logs").where(F.col("ds") == ds)
    present = sorted(row.modality for row in logs.select("modality").distinct().collect())
    if not present:
        raise InputRefused(f"bronze.search_logs has no impressions for ds={ds}")
    # Fail before any write when a modality has no usable model (clear error names path and modality).
    # The artifacts' bytes travel inside the scoring UDF: executors never read the artifact store.
    visual_dimensions: dict[str, int] = {}
    rankers = {}
    for modality in present:
        rankers[modality] = read_ranker_files(join(model_dir, modality), modality)
        loaded = ranker_from_files(rankers[modality], modality, where=display(join(model_dir, modality)))
        if loaded.config.kind == "visual":
            visual_dimensions[modality] = loaded.config.item_dim

    items = (
        lake.read("bronze.items")
        .where(F.col("ds") == ds)
        .select(
            "item_id",
            "title",
            "body",
            "visual_embedding",
            "impression_count",
            "click_count",
            "like_count",
            "share_count",
            F.lit(True).alias("item_found"),
        )
        .dropDuplicates(["item_id"])
    )
    joined = logs.join(items, on="item_id", how="left").withColumn("unscorable", unscorable_reason(visual_dimensions))

    rejects = scoring_rejects(joined, ds=ds, source=f"bronze.search_logs@{lake.version('bronze.search_logs')}")
    lake.write_rejects(rejects, ds=ds, job=SCORE_JOB)
    impressions = logs.count()
    rejected = lake.read("bronze.rejects").where((F.col("ds") == ds) & (F.col("job") == SCORE_JOB)).count()
    if impressions and rejected / impressions > threshold:
        raise InputRefused(
            f"scoring of ds={ds} refused: {rejected}/{impressions} impressions cannot be scored "
            f"({rejected / impressions:.1%}, above {threshold:.1%}); only bronze.rejects was written and the "
            f"day's scores did not change. Read bronze.rejects where ds='{ds}' and job='{SCORE_JOB}'."
        )
    scorable = (
        joined.where(F.col("unscorable").isNull())
        .withColumn("item_text", item_text_column())
        .withColumn(PRODUCTION_PERCENTILE, production_percentile_column())
    )

    encode = encode_texts_udf(encoder_batch_size, device)
    query_texts = scorable.select("query_text").distinct()
    query_embeddings = query_texts.select("query_text", encode(F.col("query_text")).alias("query_embedding"))
    # Every modality's item text: web pages and answers are ranked on it, images and videos on
    # their caption next to the visual embedding.
    item_texts = scorable.select("item_text").distinct()
    item_embeddings = item_texts.select("item_text", encode(F.col("item_text")).alias("item_text_embedding"))

    features = scorable.join(query_embeddings, on="query_text", how="left").join(
        item_embeddings, on="item_text", how="left"
    )
    score_impressions, columns = score_impressions_udf(rankers, gpu_batch_size, device)
    scored = features.withColumn("score", score_impressions(*[F.col(c) for c in columns]))

    output = ranked_scores(scored, ds=ds, model_version=model_version)
    lake.overwrite_slice(output, "silver.single_modal_scores", {"ds": ds})
    return ScoringSummary(
        ds=ds,
        model_version=model_version,
        scored=lake.read("silver.single_modal_scores").where(F.col("ds") == ds).count(),
        rejected=rejected,
        unique_query_texts=query_texts.count(),
        unique_item_texts=item_texts.count(),
    )

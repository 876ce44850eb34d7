"""Step 1 end to end on tiny data: training, pandas-UDF scoring, and every bad-input case."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from pyspark.sql import functions as F

from smar.config import SmarSettings
from smar.ingest.jobs import run_ingest
from smar.lake import Lakehouse
from smar.propensities import PropensityFitError
from smar.single_modal.evaluation import evaluate_against_baselines
from smar.single_modal.jobs import score_single_modal, train_single_modal
from smar.single_modal.list_features import production_percentile
from smar.single_modal.rankers.artifacts import RankerArtifactError, artifact_load_count, clear_ranker_cache
from smar.single_modal.rankers.encoder import encode_unique, rows_encoded_count
from smar.single_modal.rankers.features import item_texts
from smar.single_modal.registry import current_model_version, single_modal_dir
from smar.single_modal.scoring import score_batch
from smar.storage.uris import local_path
from smar.vocabulary import MODALITIES

DS = "2026-11-01"


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    """A tiny day ingested and the four rankers trained once for this module."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("single_modal")
    settings = SmarSettings(warehouse=root / "warehouse", artifacts=root / "artifacts", reports=root / "reports")
    lake = Lakehouse(spark, settings)
    run_ingest(spark, lake, ds=DS, source="generator", size="tiny", seed=5, run_quality_checks=False)
    summary = train_single_modal(lake, ds_list=[DS], epochs=3, seed=0)
    return lake, summary


def test_training_registers_four_rankers_with_versions_and_split(trained):
    lake, summary = trained
    assert [evaluation.modality for evaluation in summary.evaluations] == list(MODALITIES)
    assert summary.input_versions["bronze.search_logs"] == lake.version("bronze.search_logs")
    for modality in MODALITIES:
        metadata = (local_path(summary.artifact_dir) / modality / "metadata.json").read_text()
        assert '"training_table_versions"' in metadata and "single_modal_train" in metadata
    assert (local_path(single_modal_dir(lake)) / "CURRENT").read_text().strip() == summary.model_version


def test_scoring_matches_a_direct_call_and_encodes_each_text_once(spark, trained):
    lake, summary = trained
    # Small Arrow batches force several UDF batches: models must still load once per worker.
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "64")
    clear_ranker_cache()
    loads_before, rows_before = artifact_load_count(), rows_encoded_count()
    result = score_single_modal(spark, lake, ds=DS, gpu_batch_size=32)
    assert artifact_load_count() - loads_before == len(MODALITIES)
    assert rows_encoded_count() - rows_before == result.unique_query_texts + result.unique_item_texts
    assert result.scored == 900 and result.rejected == 0

    # The same rows scored without Spark give the same scores.
    logs = lake.read_arrow("bronze.search_logs").to_pandas()
    items = lake.read_arrow("bronze.items").to_pandas().drop(columns=["ds", "modality", "source"])
    frame = logs.merge(items, on="item_id", how="left")
    queries = encode_unique(frame["query_text"].tolist())
    frame["item_text"] = item_texts(frame)
    texts = encode_unique(frame["item_text"].tolist())
    frame["query_embedding"] = list(queries.embeddings[queries.index])
    frame["item_text_embedding"] = list(texts.embeddings[texts.index])
    frame["production_score_percentile"] = production_percentile(frame)[:, 0]
    frame["direct"] = score_batch(frame, str(summary.artifact_dir), gpu_batch_size=1000, device="cpu")
    table = lake.read_arrow("silver.single_modal_scores").to_pandas()
    merged = table.merge(frame[["request_id", "item_id", "direct"]], on=["request_id", "item_id"])
    assert len(merged) == 900
    np.testing.assert_allclose(merged["score"], merged["direct"], rtol=1e-4, atol=1e-5)

    # Ranks and percentiles within (request, modality).
    for _, group in table.groupby(["request_id", "modality"]):
        ordered = group.sort_values("rank_in_modality")
        assert list(ordered["rank_in_modality"]) == list(range(1, len(group) + 1))
        assert ordered["score"].is_monotonic_decreasing
        assert ordered["score_percentile_in_modality"].iloc[0] == 1.0


def test_rerun_of_a_day_gives_the_same_rows(spark, trained):
    lake, _ = trained
    score_single_modal(spark, lake, ds=DS)
    first = (
        lake.read_arrow("silver.single_modal_scores")
        .to_pandas()
        .sort_values(["request_id", "item_id"])
        .reset_index(drop=True)
    )
    score_single_modal(spark, lake, ds=DS)
    second = (
        lake.read_arrow("silver.single_modal_scores")
        .to_pandas()
        .sort_values(["request_id", "item_id"])
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(first, second)


def _corrupt_items(spark, lake, update):
    items = lake.read("bronze.items")
    lake.overwrite_slice(update(items), "bronze.items", {"ds": DS, "source": "generator"})


def test_bad_embeddings_go_to_rejects_and_empty_text_is_still_scored(spark, trained):
    lake, _ = trained
    original = lake.read_arrow("bronze.items").to_pandas()
    image_items = original[original.modality == "image"].item_id.tolist()
    video_items = original[original.modality == "video"].item_id.tolist()
    web_item = original[original.modality == "web"].item_id.iloc[0]
    nan_item, short_item = image_items[0], video_items[0]
    try:

        def update(items):
            embedding = F.col("visual_embedding")
            return items.select(
                *[c for c in items.columns if c not in ("visual_embedding", "title", "body")],
                F.when(
                    F.col("item_id") == nan_item,
                    F.array(F.lit(float("nan")).cast("float"), *[F.lit(0.0).cast("float")] * 31),
                )
                .when(F.col("item_id") == short_item, F.slice(embedding, 1, 5))
                .otherwise(embedding)
                .alias("visual_embedding"),
                F.when(F.col("item_id") == web_item, F.lit("")).otherwise(F.col("title")).alias("title"),
                F.when(F.col("item_id") == web_item, F.lit(None).cast("string")).otherwise(F.col("body")).alias("body"),
            )

        _corrupt_items(spark, lake, update)
        result = score_single_modal(spark, lake, ds=DS)
        rejects = lake.read("bronze.rejects").where("job = 'score_single_modal'").toPandas()
        logs = lake.read_arrow("bronze.search_logs").to_pandas()
        expected_rejects = logs.item_id.isin([nan_item, short_item]).sum()
        assert result.rejected == len(rejects) == expected_rejects > 0
        assert rejects.reason.str.contains("visual_embedding contains NaN").any()
        assert rejects.reason.str.contains("visual_embedding has length 5, expected 32").any()
        scores = lake.read_arrow("silver.single_modal_scores").to_pandas()
        assert result.scored == 900 - expected_rejects == len(scores)
        assert not scores.item_id.isin([nan_item, short_item]).any()
        empty_text = scores[scores.item_id == web_item]["score"]
        assert len(empty_text) > 0 and np.isfinite(empty_text).all()
        assert np.isfinite(scores["score"]).all()
    finally:
        lake.overwrite_slice(spark.createDataFrame(original), "bronze.items", {"ds": DS, "source": "generator"})


def test_missing_or_corrupt_artifacts_fail_before_any_write(spark, trained, tmp_path):
    lake, summary = trained
    version_before = lake.version("silver.single_modal_scores") if lake.exists("silver.single_modal_scores") else None
    broken = local_path(single_modal_dir(lake)) / "sm-broken"
    shutil.copytree(local_path(summary.artifact_dir), broken)
    # A modality with no model.
    shutil.rmtree(broken / "video")
    with pytest.raises(RankerArtifactError, match=r"modality 'video' at .*sm-broken/video"):
        score_single_modal(spark, lake, ds=DS, model_version="sm-broken")
    # A truncated state_dict.
    shutil.copytree(local_path(summary.artifact_dir) / "video", broken / "video")
    state = broken / "image" / "state_dict.pt"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(RankerArtifactError, match=r"modality 'image' at .*sm-broken/image"):
        score_single_modal(spark, lake, ds=DS, model_version="sm-broken")
    if version_before is not None:
        assert lake.version("silver.single_modal_scores") == version_before


def test_evaluation_counts_a_win_only_when_the_interval_is_above_zero():
    # Given 40 two-item lists where the ranker orders every list right and production wrong
    lists = 40
    frame = pd.DataFrame(
        {
            "query_id": np.repeat([f"q{i}" for i in range(lists)], 2),
            "item_id": np.tile(["a", "b"], lists),
            "modality": "answer",
            "grade": np.tile([3.0, 1.0], lists),
        }
    )
    frame["ranker"] = frame["grade"]
    frame["production"] = -frame["grade"]
    frame["popularity"] = frame["grade"]  # as good as the ranker
    evaluation = evaluate_against_baselines(frame, "answer", "truth.relevance", seed=0)
    # Then the win over production is certain, the tie with popularity is not a win
    assert evaluation.queries == lists
    assert evaluation.ranker_ndcg_at_10 == pytest.approx(1.0)
    assert evaluation.versus_production_ci[0] > 0 and evaluation.beats("production")
    assert evaluation.versus_popularity_ci == (0.0, 0.0) and not evaluation.beats("popularity")

    # And one list in 40 going the ranker's way is not enough to call it a win
    frame["production"] = frame["grade"]
    frame.loc[frame["query_id"] == "q0", "production"] = -frame["grade"]
    close = evaluate_against_baselines(frame, "answer", "truth.relevance", seed=0)
    assert close.ranker_ndcg_at_10 > close.production_ndcg_at_10
    assert close.versus_production_ci[0] <= 0 and not close.beats("production")
    with pytest.raises(ValueError, match="baseline must be one of"):
        close.beats("random")


def test_a_rerun_on_the_same_rows_trains_the_same_version(spark, trained):
    # Given the day ingested again from the same input (same rows, new Delta versions)
    lake, summary = trained
    version_before = lake.version("bronze.search_logs")
    registered_before = sorted(path.name for path in local_path(single_modal_dir(lake)).iterdir() if path.is_dir())
    run_ingest(spark, lake, ds=DS, source="generator", size="tiny", seed=5, run_quality_checks=False)
    assert lake.version("bronze.search_logs") > version_before
    # When the rankers are trained again with the same settings
    again = train_single_modal(lake, ds_list=[DS], epochs=3, seed=0)
    # Then it is the same model version: nothing new is registered
    assert again.model_version == summary.model_version
    registered = sorted(path.name for path in local_path(single_modal_dir(lake)).iterdir() if path.is_dir())
    assert registered == registered_before and summary.model_version in registered


def test_scoring_a_day_that_cannot_be_scored_writes_only_the_rejects(spark, trained):
    from smar.errors import InputRefused

    lake, _ = trained
    score_single_modal(spark, lake, ds=DS)
    scores_version = lake.version("silver.single_modal_scores")
    # Given the day's items lost: no impression can be scored
    lake.overwrite_slice([], "bronze.items", {"ds": DS, "source": "generator"})
    try:
        # Then scoring refuses the day, writes the rejects and leaves the day's scores as they were
        with pytest.raises(InputRefused, match=r"900/900 impressions cannot be scored"):
            score_single_modal(spark, lake, ds=DS)
        rejects = lake.read_arrow("bronze.rejects", filters=[("ds", "=", DS), ("job", "=", "score_single_modal")])
        assert rejects.num_rows == 900
        assert lake.version("silver.single_modal_scores") == scores_version
    finally:
        run_ingest(spark, lake, ds=DS, source="generator", size="tiny", seed=5, run_quality_checks=False)


def test_position_debiasing_needs_exploration_traffic_and_registers_nothing_without_it(spark, trained):
    # Given the tiny day (28 requests: one or two randomised exploration pages) and the
    # inverse-propensity setting, which needs the examination curve of that traffic
    lake, summary = trained
    debiased = Lakehouse(spark, lake.settings.model_copy(update={"ranker_position_debias": "inverse_propensity"}))
    registered_before = sorted(path.name for path in local_path(single_modal_dir(lake)).iterdir() if path.is_dir())
    # When the rankers are trained with it
    # Then training is refused with the reason (not silently trained on the biased loss)
    with pytest.raises(PropensityFitError, match="exploration pages"):
        train_single_modal(debiased, ds_list=[DS], epochs=1, seed=0)
    # and nothing is registered: the current rankers stay the ones trained without it
    registered = sorted(path.name for path in local_path(single_modal_dir(lake)).iterdir() if path.is_dir())
    assert registered == registered_before
    assert current_model_version(lake) == summary.model_version

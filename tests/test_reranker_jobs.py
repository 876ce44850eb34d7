"""The reranker's jobs end to end on a tiny lakehouse: training + registry, scoring logged pages
for replay, and the budget sweep's table and plot."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from smar.config import SmarSettings
from smar.lake import Lakehouse
from smar.reranker.inference import score_logged_pages
from smar.reranker.jobs import train_page_reranker
from smar.reranker.registry import load_run
from smar.reranker.sweep import SweepConfig, run_budget_sweep
from smar.reranker.training import TrainingConfig
from smar.splits import query_split
from smar.storage.uris import local_path
from tests.reranker_helpers import DS, HASH_ENCODER_NAME, budgeted_truth_labels, build_tiny_lake, write_labels

TINY = TrainingConfig(
    epochs=2,
    patience=2,
    model_dim=16,
    attention_heads=2,
    attention_layers=1,
    feedforward_dim=32,
    batch_pages=4,
    device="cpu",
)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_lake(spark, tmp_path_factory):
    """A tiny day with stand-in scores; page labels from truth.relevance on 50% (top) of the
    page_train / page_valid candidates and on all test candidates."""
    root = tmp_path_factory.mktemp("reranker-jobs")
    settings = SmarSettings(warehouse=root / "warehouse", artifacts=root / "artifacts", reports=root / "reports")
    lake = Lakehouse(spark, settings)
    build_tiny_lake(spark, lake)
    labels = pd.concat(
        [
            budgeted_truth_labels(lake, ds=DS, budget=0.5, splits=["page_train", "page_valid"]),
            budgeted_truth_labels(lake, ds=DS, budget=1.0, splits=["test"]),
        ]
    )
    write_labels(spark, lake, labels)
    return lake


def _test_impressions(lake: Lakehouse) -> pd.DataFrame:
    logs = lake.read_arrow("bronze.search_logs").to_pandas()
    return logs[logs["query_id"].map(query_split) == "test"]


def test_training_registers_the_run_with_its_input_versions(spark, tiny_lake):
    # Given the current versions of the inputs
    expected = {
        table: tiny_lake.version(table)
        for table in (
            "silver.single_modal_scores",
            "bronze.search_logs",
            "bronze.items",
            "bronze.users",
            "silver.page_labels",
        )
    }

    # When a SMAR reranker is trained on the annotated pages
    summary = train_page_reranker(
        spark,
        tiny_lake,
        ds_start=DS,
        ds_end=DS,
        method="smar_pairwise",
        seed=1,
        config=TINY,
        progress=False,
        encoder_name=HASH_ENCODER_NAME,
    )

    # Then its registry row records exactly those versions, the budget as annotated, metrics and
    # an artifact (state_dict + config JSON) under artifacts/rerankers/<run_id>
    record = load_run(tiny_lake, summary.run_id)
    assert record.input_versions == expected
    assert record.method == "smar_pairwise" and record.seed == 1 and record.budget is None
    assert record.train_ds == (DS,)
    assert record.hyperparameters["margin"] == 1.0 and record.hyperparameters["objective"] == "smar"
    assert 0.0 <= record.test_ndcg_at_10 <= 1.0
    assert record.test_metrics["test_queries"] == summary.test_pages > 0
    assert math.isclose(record.test_metrics["oracle_ndcg_at_10"], record.test_metrics["page_labels_ndcg_at_10"])
    artifact = local_path(record.artifact_path)
    assert record.artifact_path == tiny_lake.settings.artifacts + "/rerankers/" + summary.run_id
    assert (artifact / "state_dict.pt").is_file() and (artifact / "config.json").is_file()
    assert record.git_commit  # a commit hash, or "unknown" outside a checkout

    # and training the same definition again replaces the row instead of adding one
    again = train_page_reranker(
        spark,
        tiny_lake,
        ds_start=DS,
        ds_end=DS,
        method="smar_pairwise",
        seed=1,
        config=TINY,
        progress=False,
        encoder_name=HASH_ENCODER_NAME,
    )
    assert again.run_id == summary.run_id
    runs = tiny_lake.read_arrow("gold.reranker_runs").to_pandas()
    assert (runs["run_id"] == summary.run_id).sum() == 1


@pytest.mark.parametrize("method", ["smar_merge", "smar_listwise", "lightgbm", "gbdt_smar", "fusion_interleave"])
def test_score_logged_pages_returns_one_row_per_impression(spark, tiny_lake, method):
    # Given a registered run (the default smar_merge, the free-form reranker, LightGBM, the GBDT
    # with the SMAR objective, or a fusion)
    summary = train_page_reranker(
        spark,
        tiny_lake,
        ds_start=DS,
        ds_end=DS,
        method=method,
        seed=0,
        config=TINY,
        progress=False,
        encoder_name=HASH_ENCODER_NAME,
    )

    # When the test queries' logged pages are scored
    scored = score_logged_pages(spark, tiny_lake, summary.run_id, DS, DS).toPandas()

    # Then every logged impression of the test queries gets exactly one finite score
    impressions = _test_impressions(tiny_lake)
    assert list(scored.columns) == ["ds", "request_id", "query_id", "item_id", "modality", "position", "score"]
    assert len(scored) == len(impressions)
    keys = ["request_id", "position"]
    merged = scored.merge(
        impressions[keys + ["item_id", "modality"]],
        on=keys,
        how="inner",
        suffixes=("", "_logged"),
        validate="one_to_one",
    )
    assert len(merged) == len(impressions)
    assert (merged["item_id"] == merged["item_id_logged"]).all()
    assert (merged["modality"] == merged["modality_logged"]).all()
    assert np.isfinite(scored["score"]).all()
    if method == "smar_merge":  # half of the training candidates are labelled: the residual merge
        record = load_run(tiny_lake, summary.run_id)
        assert record.validation_metrics["merge_candidate"] == "residual_merge"
        assert set(record.hyperparameters) == {"teacher", "student", "residual_from"}


def test_the_default_method_is_smar_merge_and_self_trains_below_half_the_labels(spark, tiny_lake):
    # Given a budget of 20% of the annotated labels (top of each list)
    summary = train_page_reranker(
        spark,
        tiny_lake,
        ds_start=DS,
        ds_end=DS,
        budget=0.2,
        seed=0,
        config=TINY,
        progress=False,
        encoder_name=HASH_ENCODER_NAME,
    )
    # Then the default method ran its self-trained regime, and the teacher's checkpoint is kept
    record = load_run(tiny_lake, summary.run_id)
    assert summary.method == "smar_merge" and summary.run_id.startswith("smar_merge-")
    assert record.validation_metrics["merge_candidate"] == "self_trained_residual"
    assert record.validation_metrics["merge_labelled_fraction"] < 0.5
    artifact = local_path(record.artifact_path)
    assert (artifact / "checkpoint" / "teacher" / "checkpoint.pt").is_file()


def test_budget_sweep_writes_its_table_and_plot_idempotently(spark, tiny_lake):
    # Given a small sweep (2 seeds, 2 budgets, four methods)
    config = SweepConfig(
        ds_start=DS,
        ds_end=DS,
        seeds=(0, 1),
        budgets=(0.5, 1.0),
        methods=("page_loss_only", "sft", "lightgbm", "fusion_zscore"),
        training=TINY,
        progress=False,
        encoder_name=HASH_ENCODER_NAME,
        sweep_id="test-sweep",
    )

    # When it runs
    summary = run_budget_sweep(spark, tiny_lake, config)

    # Then gold.budget_sweep has one row per (run, label source): 2 seeds x (plo@0.5, sft, lgbm@0.5,
    # lgbm@1, fusion) x 2 sources, and the plot and summary exist
    table = tiny_lake.read_arrow("gold.budget_sweep").to_pandas()
    assert len(table) == 2 * 5 * 2
    assert set(table["label_source"]) == {"oracle", "page_labels"}
    assert set(table.loc[table["method"] == "fusion_zscore", "budget"]) == {0.0}
    plot = local_path(summary.plot_path)
    assert plot.is_file() and plot.parent == local_path(tiny_lake.settings.reports) / "sweep"
    assert local_path(summary.summary_path).is_file()
    trained = summary.aggregate[summary.aggregate["method"] != "merge_ceiling"]
    assert set(trained["seeds"]) == {2}
    # the merge ceiling is reported per label source, above every method, with a bootstrap interval
    ceiling = summary.aggregate[summary.aggregate["method"] == "merge_ceiling"].set_index("label_source")
    assert set(ceiling.index) == {"oracle", "page_labels"}
    for source, group in trained.groupby("label_source"):
        assert ceiling.loc[source, "ndcg_at_10"] >= group["ndcg_at_10"].max() - 1e-9
        assert ceiling.loc[source, "ci_low"] <= ceiling.loc[source, "ndcg_at_10"] <= ceiling.loc[source, "ci_high"]
    # every run's per-query NDCG@10 is kept, and the intervals are resampled over queries and seeds
    per_query = pd.read_csv(local_path(summary.summary_path).parent / "test-sweep_per_query.csv")
    assert per_query["query_id"].nunique() == table["test_queries"].iloc[0]
    assert "paired_bootstrap_over_queries_and_seeds" in summary.comparisons["oracle"]
    assert (trained["ci_low"] <= trained["ndcg_at_10"] + 1e-12).all()
    # the simulated labels cover every candidate at 100%: sft trained on all of them
    sft = table[(table["method"] == "sft")]
    assert (sft["train_labelled_fraction"] == 1.0).all()

    # and running it again replaces the slice (same row count, same values)
    run_budget_sweep(spark, tiny_lake, config)
    again = tiny_lake.read_arrow("gold.budget_sweep").to_pandas()
    assert len(again) == len(table)
    key = ["method", "budget", "seed", "label_source"]
    pd.testing.assert_series_equal(
        again.sort_values(key)["ndcg_at_10"].reset_index(drop=True),
        table.sort_values(key)["ndcg_at_10"].reset_index(drop=True),
    )


# Last in the module: it adds the noisy team's labels to the shared tiny lake.
def test_noisy_simulated_labels_come_from_the_annotator_model(spark, tiny_lake):
    # Given the simulated team with noise and disagreement on every candidate
    from smar.reranker.sweep import simulated_team, write_simulated_page_labels

    config = SweepConfig(ds_start=DS, ds_end=DS, label_noise=0.3, label_disagreement=0.3)
    team = simulated_team(config)
    written = write_simulated_page_labels(
        spark, tiny_lake, ds_values=[DS], noise=0.3, disagreement=0.3, team=team, seed=config.label_seed
    )

    # Then two annotators grade every candidate, grades stay in 0..4, and some differ from the truth
    labels = tiny_lake.read_arrow("silver.page_labels").to_pandas()
    labels = labels[labels["annotator"].isin(team)]
    assert written == len(labels) and set(labels["annotator"]) == set(team)
    assert labels["grade"].between(0, 4).all()
    truth = tiny_lake.read_arrow("truth.relevance").to_pandas()
    merged = labels.merge(truth, on=["ds", "query_id", "item_id"], suffixes=("", "_true"))
    assert 0.05 < (merged["grade"] != merged["grade_true"]).mean() < 0.8
    # and the sweep reads exactly that team's labels
    assert config.label_annotators() == team
    assert SweepConfig(ds_start=DS, ds_end=DS).label_annotators() == ("simulated-oracle",)


def test_the_page_store_reads_every_labelled_training_page_and_a_capped_test_sample(tiny_lake):
    from smar.reranker.runs import prepare_pages
    from smar.sampling import sample_key

    def prepared(lake: Lakehouse):
        return prepare_pages(lake, ds_values=[DS], encoder_name=HASH_ENCODER_NAME)

    full = prepared(tiny_lake)
    capped_lake = Lakehouse(tiny_lake.spark, tiny_lake.settings.model_copy(update={"max_evaluation_queries": 2}))
    capped = prepared(capped_lake)
    test_queries = sorted(set(full.test.query_id))
    assert len(test_queries) > 2
    # The training and validation pages are all there, with the same labels; the test pages are
    # the two test queries with the smallest sample keys.
    for split in ("train", "validation"):
        assert getattr(capped, split).fingerprint() == getattr(full, split).fingerprint()
    assert sorted(set(capped.test.query_id)) == sorted(sorted(test_queries, key=sample_key)[:2])

"""Baselines: naive fusions (hand-computed), LightGBM lambdarank, and the sweep's statistics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from smar.reranker.baselines import (
    LightGBMConfig,
    LightGBMModel,
    fusion_interleave_scores,
    fusion_zscore_scores,
    interleave_order,
    production_modality_share,
    train_lightgbm,
)
from smar.reranker.store import MODALITY_INDEX
from smar.reranker.sweep import SweepConfig, sweep_plan
from smar.reranker.sweep_report import aggregate_sweep, headline_comparisons, mean_and_interval, plot_sweep
from smar.reranker.training import mean_ndcg
from tests.reranker_helpers import synthetic_store


def test_interleave_follows_the_modality_shares():
    # Given 3 web items and 2 image items, shares 2/3 web, 1/3 image
    web, image = MODALITY_INDEX["web"], MODALITY_INDEX["image"]
    modality_ids = np.array([image, web, web, image, web])
    ranks = np.array([2, 3, 1, 1, 2])  # single-modal ranks within each modality
    shares = {"web": 2 / 3, "image": 1 / 3, "video": 0.0, "answer": 0.0}

    # When the page is interleaved
    order = interleave_order(modality_ids, ranks, shares)

    # Then slot 1: deficits web 2/3, image 1/3 -> web#1 (offset 2); slot 2: web 1/3, image 2/3 ->
    # image#1 (offset 3); slot 3: web 1, image 0 -> web#2 (offset 4); slot 4: web 2/3, image 1/3
    # -> web#3 (offset 1); slot 5: only image#2 (offset 0) is left
    assert order.tolist() == [2, 3, 4, 1, 0]


def test_interleave_scores_reproduce_the_order():
    store, _ = synthetic_store(3, seed=4)
    shares = {"web": 0.4, "image": 0.3, "video": 0.2, "answer": 0.1}
    scores = fusion_interleave_scores(store, shares)
    for page in range(store.n_pages):
        start, stop = int(store.offsets[page]), int(store.offsets[page + 1])
        expected = interleave_order(store.modality_id[start:stop], store.rank_in_modality[start:stop], shares)
        assert np.argsort(-scores[start:stop], kind="stable").tolist() == expected.tolist()


def test_production_share_counts_the_top_slots():
    store, _ = synthetic_store(2, seed=0, min_items=4, max_items=4)
    store.position[:] = np.tile([1, 2, 3, 11], 2)
    web, image, video = (MODALITY_INDEX[name] for name in ("web", "image", "video"))
    store.modality_id[:] = np.tile([web, web, image, video], 2)
    shares = production_modality_share(store, top_k=10)
    assert shares == pytest.approx({"web": 2 / 3, "image": 1 / 3, "video": 0.0, "answer": 0.0})


def test_zscore_fusion_reads_the_within_modality_zscore():
    store, _ = synthetic_store(2, seed=0)
    store.numeric[:, 2] = np.arange(store.n_items)
    np.testing.assert_array_equal(fusion_zscore_scores(store), np.arange(store.n_items, dtype=np.float32))


def test_lightgbm_lambdarank_learns_the_planted_signal(tmp_path):
    # Given labelled synthetic pages (intent one-hot in the query embedding)
    train, _ = synthetic_store(80, seed=1, text_dim=4)
    validation, _ = synthetic_store(20, seed=2, text_dim=4)
    test, grades = synthetic_store(30, seed=3, text_dim=4)

    # When LightGBM lambdarank trains on the labelled items
    model = train_lightgbm(
        train, validation, LightGBMConfig(n_estimators=60, embedding_components=4, min_data_in_leaf=5)
    )

    # Then it beats random scores, and the saved artifact scores the same
    scores = model.score(test)
    random_scores = np.random.default_rng(0).normal(size=test.n_items)
    assert mean_ndcg(test, scores, grades) > mean_ndcg(test, random_scores, grades) + 0.1
    model.save(tmp_path)
    np.testing.assert_allclose(LightGBMModel.load(tmp_path).score(test), scores, rtol=1e-6)


def test_mean_and_interval_is_a_t_interval():
    mean, low, high = mean_and_interval(np.array([1.0, 2.0, 3.0]))
    # t(0.975, 2) = 4.302653; sd = 1; half width = 4.302653 / sqrt(3)
    assert mean == 2.0
    assert math.isclose(high - mean, 4.302653 / math.sqrt(3), rel_tol=1e-5)
    assert math.isclose(mean - low, high - mean)
    assert math.isnan(mean_and_interval(np.array([0.5]))[1])


def test_headline_comparisons_pair_by_seed(tmp_path):
    # Given two seeds of SFT, SMAR@0.3 and page-loss-only@0.3
    rows = pd.DataFrame(
        [
            {"label_source": "oracle", "method": "sft", "budget": 1.0, "seed": 0, "ndcg_at_10": 0.80},
            {"label_source": "oracle", "method": "sft", "budget": 1.0, "seed": 1, "ndcg_at_10": 0.90},
            {"label_source": "oracle", "method": "smar_pairwise", "budget": 0.3, "seed": 0, "ndcg_at_10": 0.78},
            {"label_source": "oracle", "method": "smar_pairwise", "budget": 0.3, "seed": 1, "ndcg_at_10": 0.90},
            {"label_source": "oracle", "method": "page_loss_only", "budget": 0.3, "seed": 0, "ndcg_at_10": 0.70},
            {"label_source": "oracle", "method": "page_loss_only", "budget": 0.3, "seed": 1, "ndcg_at_10": 0.92},
        ]
    )
    # When compared
    comparisons = headline_comparisons(rows, (0.3, 1.0))["oracle"]
    # Then ratios and differences are taken seed by seed
    ratio = comparisons["smar_pairwise@0.3_over_sft"]
    assert ratio["ratio"] == pytest.approx((0.78 / 0.80 + 1.0) / 2)
    assert ratio["reaches_0.97"] is True
    difference = comparisons["smar_pairwise@0.3_minus_page_loss_only"]
    assert difference["difference"] == pytest.approx((0.08 - 0.02) / 2)
    assert difference["smar_better_in_seeds"] == 1
    # and the aggregate feeds a plot
    path = plot_sweep(aggregate_sweep(rows), tmp_path / "sweep.png", title="test")
    assert path.stat().st_size > 10_000


def test_the_plan_runs_page_loss_only_below_full_labels_and_fusions_once():
    config = SweepConfig(
        ds_start="2026-11-01",
        ds_end="2026-11-01",
        seeds=(0,),
        budgets=(0.2, 1.0),
        methods=("page_loss_only", "sft", "fusion_raw", "smar_pairwise"),
    )
    assert sweep_plan(config) == [
        (0, "page_loss_only", 0.2),
        (0, "sft", 1.0),
        (0, "fusion_raw", None),
        (0, "smar_pairwise", 0.2),
        (0, "smar_pairwise", 1.0),
    ]


def test_cli_commands_are_registered():
    from typer.testing import CliRunner

    from smar.cli import app

    runner = CliRunner()
    for command in ("train-reranker", "budget-sweep"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "--ds-start" in result.output

"""The calibrated merge (monotone by construction) and the GBDT with a SMAR objective."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from smar.reranker.calibrated_merge import CalibratedMerge, CalibratedMergeConfig
from smar.reranker.ceiling import ceiling_ndcg_per_page, keeps_single_modal_order
from smar.reranker.dataset import collate_pages
from smar.reranker.gbdt_smar import GbdtSmarConfig, SmarObjective, train_gbdt_smar
from smar.reranker.store import NUMERIC_FEATURE_NAMES, PageStore
from smar.reranker.training import (
    TrainingConfig,
    load_reranker,
    mean_ndcg,
    save_reranker,
    score_store,
    train_reranker,
)
from tests.reranker_helpers import synthetic_store


def _with_rank_features(store: PageStore) -> PageStore:
    """synthetic_store leaves the rank-derived numeric columns at 0; fill them as the page
    builder does (percentile, within-page z-score, 1/rank)."""
    numeric = store.numeric.copy()
    for page in range(store.n_pages):
        start, stop = int(store.offsets[page]), int(store.offsets[page + 1])
        for modality in np.unique(store.modality_id[start:stop]):
            rows = start + np.flatnonzero(store.modality_id[start:stop] == modality)
            n = len(rows)
            ranks = store.rank_in_modality[rows]
            values = store.single_modal_score[rows]
            numeric[rows, NUMERIC_FEATURE_NAMES.index("score_percentile_in_modality")] = (
                (n - ranks) / (n - 1) if n > 1 else 1.0
            )
            spread = values.std()
            numeric[rows, NUMERIC_FEATURE_NAMES.index("score_zscore_in_modality")] = (
                (values - values.mean()) / spread if spread > 0 else 0.0
            )
            numeric[rows, NUMERIC_FEATURE_NAMES.index("reciprocal_rank_in_modality")] = 1.0 / ranks
    return replace(store, numeric=numeric)


@pytest.mark.parametrize("seed", range(3))
def test_any_parameters_keep_every_single_modal_order(seed):
    # Given a calibrated merge with random (large) parameters
    store, _ = synthetic_store(12, seed=seed)
    store = _with_rank_features(store)
    torch.manual_seed(seed)
    model = CalibratedMerge(CalibratedMergeConfig.for_store(store, dropout=0.0))
    model.fit_standardization(store)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 3.0)

    # When it scores the pages
    scores = score_store(model, store)

    # Then within every (page, modality) a better single-modal rank never scores lower, and
    # strictly higher (the -log(rank) slope is at least MIN_SLOPE)
    assert keeps_single_modal_order(store, scores)
    for page in range(store.n_pages):
        start, stop = int(store.offsets[page]), int(store.offsets[page + 1])
        for modality in np.unique(store.modality_id[start:stop]):
            rows = start + np.flatnonzero(store.modality_id[start:stop] == modality)
            ordered = scores[rows[np.argsort(store.rank_in_modality[rows])]]
            assert np.all(np.diff(ordered) < 0)


def test_padding_does_not_change_scores_and_gets_zero():
    store, _ = synthetic_store(4, seed=1, min_items=3, max_items=9)
    store = _with_rank_features(store)
    model = CalibratedMerge(CalibratedMergeConfig.for_store(store, dropout=0.0)).eval()
    model.fit_standardization(store)
    together = model(collate_pages([store.page(i) for i in range(store.n_pages)]))
    for index in range(store.n_pages):
        alone = model(collate_pages([store.page(index)]))[0]
        size = int(store.page_sizes[index])
        torch.testing.assert_close(together[index, :size], alone[:size], atol=1e-5, rtol=1e-5)
        assert torch.all(together[index, size:] == 0)


def test_it_starts_as_the_zscore_fusion():
    # Given a fresh model: intercepts 0, slope 1 on the standardised score, ~0.01 elsewhere
    store, _ = synthetic_store(5, seed=2)
    store = _with_rank_features(store)
    model = CalibratedMerge(CalibratedMergeConfig.for_store(store, dropout=0.0)).eval()
    model.fit_standardization(store)
    scores = score_store(model, store)
    z = np.zeros(store.n_items)
    for m in range(4):
        rows = store.modality_id == m
        z[rows] = (store.single_modal_score[rows] - store.single_modal_score[rows].mean()) / store.single_modal_score[
            rows
        ].std()
    assert np.corrcoef(scores, z)[0, 1] > 0.99


def test_training_learns_the_intent_calibration_and_round_trips(tmp_path):
    # Given pages whose grade depends on the single-modal score and on whether the item's
    # modality is the page's intent (read from the query embedding)
    store, grades = synthetic_store(160, seed=4)
    store = _with_rank_features(store)
    train, validation = store.subset(range(120)), store.subset(range(120, 160))
    config = TrainingConfig(
        model_kind="calibrated_merge",
        objective="page_loss_only",
        epochs=30,
        patience=30,
        device="cpu",
        seed=0,
        learning_rate=1e-2,
    )

    # When the calibrated merge is trained
    result = train_reranker(train, validation, config, progress=False)
    scores = score_store(result.model, validation)

    # Then it beats the score alone (which ignores the intent), comes within 0.01 of the merge
    # ceiling, and keeps the orders
    learned = mean_ndcg(validation, scores, validation.labels)
    assert learned > mean_ndcg(validation, validation.single_modal_score, validation.labels) + 0.015
    assert learned > float(np.nanmean(ceiling_ndcg_per_page(validation, validation.labels))) - 0.01
    assert keeps_single_modal_order(validation, scores)
    # and its artifact scores identically after a reload
    save_reranker(result.model, config, tmp_path / "run")
    loaded, document = load_reranker(tmp_path / "run")
    assert document["model_kind"] == "calibrated_merge"
    np.testing.assert_allclose(score_store(loaded, validation), scores, atol=1e-5)


# ------------------------------------------------------------------------------ GBDT + SMAR


def test_smar_objective_gradient_matches_finite_differences():
    store, _ = synthetic_store(3, seed=5, min_items=4, max_items=6, label_fraction=0.7)
    objective = SmarObjective(store, intra_weight=0.5)
    rng = np.random.default_rng(0)
    predictions = rng.normal(size=store.n_items)
    gradient, hessian = objective(predictions)
    scores = np.zeros(objective.labelled.shape)
    scores[objective.rows, objective.columns] = predictions
    weights = objective.pair_weights(scores)  # held fixed, as LambdaRank does
    step = 1e-6
    for row in range(store.n_items):
        shifted = predictions.copy()
        shifted[row] += step
        numeric = (objective.loss(shifted, weights) - objective.loss(predictions, weights)) / step
        assert gradient[row] == pytest.approx(numeric, abs=1e-4)
    assert np.all(hessian > 0)


def test_intra_pairs_alone_teach_the_single_modal_order():
    # Given the intra-modal term only (no page label carries a pair: one label per page)
    store, _ = synthetic_store(3, seed=6)
    objective = SmarObjective(store, intra_weight=1.0)
    gradient, _ = objective(np.zeros(store.n_items))
    # Then at zero scores the gradient pushes better-ranked items up (negative gradient): within
    # each modality, the gradient rises with the rank
    for page in range(store.n_pages):
        start, stop = int(store.offsets[page]), int(store.offsets[page + 1])
        for modality in np.unique(store.modality_id[start:stop]):
            rows = start + np.flatnonzero(store.modality_id[start:stop] == modality)
            if len(rows) < 2:
                continue
            ordered = gradient[rows[np.argsort(store.rank_in_modality[rows])]]
            assert np.all(np.diff(ordered) >= -1e-12) and ordered[0] < ordered[-1]


def test_monotone_gbdt_keeps_orders_and_learns():
    store, _ = synthetic_store(160, seed=7)
    store = _with_rank_features(store)
    train, validation = store.subset(range(120)), store.subset(range(120, 160))
    model = train_gbdt_smar(
        train,
        validation,
        GbdtSmarConfig(
            n_estimators=100,
            embedding_components=2,
            learning_rate=0.1,
            min_data_in_leaf=5,
            monotone=True,
            intra_weight=0.0,
        ),
    )
    scores = model.score(validation)
    assert keeps_single_modal_order(validation, scores)
    assert mean_ndcg(validation, scores, validation.labels) > mean_ndcg(
        validation, validation.single_modal_score, validation.labels
    )


def test_smar_merge_self_trains_below_the_switch_and_uses_the_residual_above(tmp_path):
    from smar.reranker.calibrated_merge import ResidualMerge
    from smar.reranker.merge_selection import SELF_TRAINED, train_selected_merge

    store, _ = synthetic_store(40, seed=8)
    store = _with_rank_features(store)
    base = TrainingConfig(
        epochs=2,
        patience=2,
        device="cpu",
        model_dim=16,
        attention_heads=2,
        attention_layers=1,
        feedforward_dim=32,
        batch_pages=8,
    )
    rng = np.random.default_rng(0)
    few = store.with_labels(np.where(rng.random(store.n_items) < 0.2, store.labels, np.nan))
    selected = train_selected_merge(
        few.subset(range(30)), few.subset(range(30, 40)), base, checkpoint_dir=tmp_path / "few", progress=False
    )
    assert selected.name == SELF_TRAINED and isinstance(selected.result.model, ResidualMerge)
    assert (tmp_path / "few" / "teacher" / "checkpoint.pt").is_file()
    full = train_selected_merge(store.subset(range(30)), store.subset(range(30, 40)), base, progress=False)
    assert full.name == "residual_merge" and full.labelled_fraction == 1.0


@pytest.mark.parametrize("model_kind", ["calibrated_merge", "residual_merge"])
def test_merge_artifacts_round_trip_and_refuse_an_unrecorded_modality_order(tmp_path, model_kind):
    import json

    from smar.errors import ArtifactError

    # Given a trained merge (calibrated, or with its free-form residual) saved as an artifact
    store, _ = synthetic_store(12, seed=9)
    store = _with_rank_features(store)
    config = TrainingConfig(
        model_kind=model_kind,
        merge_context=("query", "user", "page_stats", "cosine_stats"),
        residual_scale=0.1,
        epochs=1,
        patience=1,
        device="cpu",
        model_dim=16,
        attention_heads=2,
        attention_layers=1,
        feedforward_dim=32,
    )
    result = train_reranker(store, None, config, progress=False)
    directory = save_reranker(result.model, config, tmp_path / model_kind)

    # Then it scores identically once loaded
    loaded, document = load_reranker(directory)
    assert document["model_kind"] == model_kind
    np.testing.assert_allclose(score_store(loaded, store), score_store(result.model, store), atol=1e-5)

    # and an artifact that does not record its modality order (written before the one
    # vocabulary, with other modality ids) is refused instead of scoring with the wrong ids
    path = directory / "config.json"
    document = json.loads(path.read_text())
    recorded = document["model"]["merge"] if model_kind == "residual_merge" else document["model"]
    del recorded["modalities"]
    path.write_text(json.dumps(document))
    with pytest.raises(ArtifactError, match="retrain"):
        load_reranker(directory)

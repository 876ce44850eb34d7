"""The page reranker's model and trainer on synthetic pages with a planted signal (no Spark)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from smar.reranker.dataset import collate_pages
from smar.reranker.model import PageReranker, RerankerConfig
from smar.reranker.training import (
    DEFAULT_INTRA_WEIGHT,
    TrainingConfig,
    load_reranker,
    mean_ndcg,
    ndcg_per_page,
    save_reranker,
    score_store,
    train_reranker,
)
from tests.reranker_helpers import synthetic_store

TINY = {
    "model_dim": 16,
    "attention_heads": 2,
    "attention_layers": 1,
    "feedforward_dim": 32,
    "batch_pages": 8,
    "device": "cpu",
    "learning_rate": 5e-3,
}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # Tiny models on a shared 2-core machine: extra intra-op threads only wait on each other.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def stores():
    train, _ = synthetic_store(48, seed=1)
    validation, _ = synthetic_store(16, seed=2)
    test, test_grades = synthetic_store(24, seed=3)
    return train, validation, test, test_grades


def test_training_reduces_the_loss_and_beats_random(stores):
    # Given pages whose grades depend on quality and on the page's intent modality
    train, validation, test, test_grades = stores
    config = TrainingConfig(objective="smar", epochs=8, patience=8, seed=0, **TINY)

    # When the reranker trains for a few epochs with a fixed seed
    result = train_reranker(train, validation, config, progress=False)

    # Then the training loss fell, and the test pages rank far better than at random
    losses = [record["train_loss"] for record in result.history]
    assert losses[-1] < 0.8 * losses[0]
    trained = mean_ndcg(test, score_store(result.model, test), test_grades)
    random_scores = np.random.default_rng(0).normal(size=test.n_items)
    assert trained > mean_ndcg(test, random_scores, test_grades) + 0.1
    # and the intent signal was used: better than the single-modal scores alone
    assert trained > mean_ndcg(test, test.single_modal_score, test_grades)


def test_resume_from_a_checkpoint_continues_identically(stores, tmp_path):
    # Given one uninterrupted run and one interrupted after epoch 2, then resumed
    train, validation, _, _ = stores
    config = TrainingConfig(objective="smar", epochs=4, patience=10, seed=3, dropout=0.2, **TINY)
    straight = train_reranker(train, validation, config, progress=False)
    train_reranker(train, validation, config, checkpoint_dir=tmp_path, stop_after_epoch=2, progress=False)

    # When the interrupted run resumes from its checkpoint
    resumed = train_reranker(train, validation, config, checkpoint_dir=tmp_path, resume=True, progress=False)

    # Then weights and per-epoch metrics equal the uninterrupted run's
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    assert [r["validation_ndcg_at_10"] for r in resumed.history] == [
        r["validation_ndcg_at_10"] for r in straight.history
    ]
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert resumed.best_epoch == straight.best_epoch


def test_resume_refuses_a_checkpoint_of_another_config(stores, tmp_path):
    train, validation, _, _ = stores
    config = TrainingConfig(epochs=2, **TINY)
    train_reranker(train, validation, config, checkpoint_dir=tmp_path, stop_after_epoch=1, progress=False)
    with pytest.raises(ValueError, match="another TrainingConfig"):
        train_reranker(
            train, validation, TrainingConfig(epochs=3, **TINY), checkpoint_dir=tmp_path, resume=True, progress=False
        )


def test_padding_does_not_change_a_pages_scores(stores):
    # Given a model in eval mode and one page alone, then batched with a longer page
    train, _, _, _ = stores
    torch.manual_seed(0)
    model = PageReranker(RerankerConfig.for_store(train, model_dim=16, attention_heads=2, attention_layers=1)).eval()
    short = int(np.argmin(train.page_sizes))
    long = int(np.argmax(train.page_sizes))
    assert train.page_sizes[short] < train.page_sizes[long]

    # When both batches are scored
    with torch.no_grad():
        alone = model(collate_pages([train.page(short)]))
        padded = model(collate_pages([train.page(short), train.page(long)]))

    # Then the short page's real items score the same, and its padding scores 0
    size = int(train.page_sizes[short])
    torch.testing.assert_close(alone[0, :size], padded[0, :size], rtol=1e-5, atol=1e-5)
    assert torch.all(padded[0, size:] == 0)


def test_artifact_round_trip_scores_identically(stores, tmp_path):
    train, _, test, _ = stores
    config = TrainingConfig(epochs=1, **TINY)
    result = train_reranker(train, None, config, progress=False)
    save_reranker(result.model, config, tmp_path, extra={"store": {"user_dim": 1}})
    loaded, document = load_reranker(tmp_path)
    np.testing.assert_array_equal(score_store(result.model, test), score_store(loaded, test))
    assert document["training"]["epochs"] == 1 and document["store"] == {"user_dim": 1}


def test_lambda_defaults_depend_on_the_intra_loss():
    assert TrainingConfig(intra_loss="pairwise_hinge").lambda_weight() == DEFAULT_INTRA_WEIGHT["pairwise_hinge"]
    assert TrainingConfig(intra_loss="list_mle").lambda_weight() == DEFAULT_INTRA_WEIGHT["list_mle"]
    assert TrainingConfig(intra_loss="list_mle", intra_weight=2.0).lambda_weight() == 2.0
    with pytest.raises(ValueError, match="unknown modalities"):
        TrainingConfig(modality_weights={"podcast": 1.0})


def test_ndcg_per_page_ranks_only_labelled_items():
    # Given one page of 3 items where only the first two carry a label
    store, _ = synthetic_store(1, seed=0, min_items=3, max_items=3)
    grades = np.array([0.0, 2.0, np.nan], dtype=np.float32)
    # When the unlabelled item scores highest and the labelled ones are in the wrong order
    values = ndcg_per_page(store, np.array([0.5, 0.1, 9.0]), grades)
    # Then NDCG is that of the two labelled items alone: DCG = 2 / log2(3), ideal = 2
    assert math.isclose(values[0], (2 / math.log2(3)) / 2.0)

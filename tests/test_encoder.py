"""The bundled MiniLM encoder: offline, loaded once per process, one forward row per unique text."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest

from smar.single_modal.rankers import encoder as encoder_module
from smar.single_modal.rankers.encoder import (
    TEXT_EMBEDDING_DIM,
    encode_unique,
    encoder_load_count,
    get_text_encoder,
    rows_encoded_count,
)
from smar.single_modal.rankers.features import build_feature_arrays
from smar.single_modal.rankers.models import build_ranker
from smar.single_modal.rankers.training import score_frame


@pytest.fixture(scope="module")
def cpu_encoder():
    # Loading MiniLM takes a few seconds: once for the whole module.
    return get_text_encoder("cpu")


def test_offline_flags_are_set_before_any_hub_import(cpu_encoder):
    # Given the encoder module imported / Then the hub and transformers are told not to download
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_forward_sees_one_row_per_unique_text(cpu_encoder):
    # Given 9 inputs holding 4 distinct texts
    texts = ["red fox", "blue whale", "red fox", "", "blue whale", "red fox", "tide", "", "tide"]
    rows_before = rows_encoded_count()
    # When
    unique_texts, embeddings, index = encode_unique(texts, batch_size=3, device="cpu")
    # Then MiniLM's transformer ran on exactly 4 rows, in first-seen order
    assert rows_encoded_count() - rows_before == 4
    assert unique_texts == ["red fox", "blue whale", "", "tide"]
    assert embeddings.shape == (4, TEXT_EMBEDDING_DIM) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    # and each input maps to the row of its own text
    assert [unique_texts[row] for row in index] == texts


def test_model_is_loaded_once_across_many_calls(cpu_encoder):
    # Given the encoder already loaded on the CPU
    loads_before = encoder_load_count()
    # When many batches are encoded and the encoder is asked for again and again
    for call in range(5):
        encode_unique([f"query {call}", "shared text"], batch_size=64, device="cpu")
        assert get_text_encoder("cpu") is cpu_encoder
    # Then nothing was read from disk again
    assert encoder_load_count() == loads_before


def test_a_fresh_worker_loads_once_then_reuses(cpu_encoder, monkeypatch):
    # Given a worker whose cache is empty (as in a new Python worker process)
    monkeypatch.setattr(encoder_module, "_encoders", {})
    loads_before = encoder_load_count()
    # When it encodes several batches
    for call in range(3):
        encode_unique([f"batch {call}"], device="cpu")
    # Then exactly one load happened, and it is a different object from the module's copy
    assert encoder_load_count() - loads_before == 1
    assert get_text_encoder("cpu") is not cpu_encoder


def test_empty_and_missing_text_share_one_finite_embedding(cpu_encoder):
    # Given the shapes of "no text" a pandas column can hold
    unique_texts, embeddings, index = encode_unique(["", None, float("nan"), pd.NA], device="cpu")
    # Then they are one unique text (the empty string) with a finite unit vector
    assert unique_texts == [""]
    assert index.tolist() == [0, 0, 0, 0]
    assert np.isfinite(embeddings).all()
    assert math.isclose(float(np.linalg.norm(embeddings[0])), 1.0, abs_tol=1e-5)


def test_embeddings_do_not_depend_on_batch_size(cpu_encoder):
    texts = ["a short one", "a considerably longer sentence about deep sea creatures", "x"]
    _, one_at_a_time, _ = encode_unique(texts, batch_size=1, device="cpu")
    _, together, _ = encode_unique(texts, batch_size=64, device="cpu")
    np.testing.assert_allclose(one_at_a_time, together, atol=1e-4)


def test_similar_meaning_is_closer(cpu_encoder):
    # Given a query about cats, a paraphrase and an unrelated text
    _, embeddings, _ = encode_unique(
        ["cute cat photos", "pictures of kittens", "quarterly tax filing deadline"], device="cpu"
    )
    # Then the paraphrase is nearer than the unrelated text
    assert embeddings[0] @ embeddings[1] > embeddings[0] @ embeddings[2] + 0.2


def test_no_texts_gives_an_empty_matrix(cpu_encoder):
    unique_texts, embeddings, index = encode_unique([], device="cpu")
    assert unique_texts == [] and embeddings.shape == (0, TEXT_EMBEDDING_DIM) and len(index) == 0


def test_bad_batch_size_is_refused():
    with pytest.raises(ValueError, match="batch_size"):
        encode_unique(["a"], batch_size=0, device="cpu")


def test_item_without_text_still_gets_a_finite_score(cpu_encoder):
    # Given web impressions of one query: one item with title and body, one with neither
    frame = pd.DataFrame(
        {
            "request_id": ["r1", "r1", "r2"],
            "query_text": ["hiking boots", "hiking boots", "hiking boots"],
            "item_id": ["w1", "w2", "w2"],
            "modality": ["web", "web", "web"],
            "title": ["Best hiking boots 2025", "", ""],
            "body": ["Waterproof boots reviewed", None, None],
            "visual_embedding": [None, None, None],
            "impression_count": [100, 0, 0],
            "click_count": [10, 0, 0],
            "like_count": [1, 0, 0],
            "share_count": [0, 0, 0],
        }
    )
    rows_before = rows_encoded_count()
    # When features are built with the real encoder and an untrained web ranker scores them
    features = build_feature_arrays(frame, "web", batch_size=64, device="cpu")
    scores = score_frame(build_ranker("web").eval(), features, device="cpu")
    # Then 1 unique query + 2 unique item texts were encoded, and every score is finite
    assert rows_encoded_count() - rows_before == 3
    assert scores.shape == (3,) and np.isfinite(scores).all()

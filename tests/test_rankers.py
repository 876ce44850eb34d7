"""Single-modal rankers: features, labels, pairs, training, scoring and artifacts.

The synthetic fixture: queries about a few topics; every item belongs to one topic, and its text
(web, answer) or visual embedding (image, video) lies near that topic. Items of the query's topic
are relevant and clicked more often, with longer dwell. Engagement counters are topic-blind noise,
so a ranker can only beat random by matching query and item content.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
import torch

from smar.single_modal.rankers.artifacts import (
    RankerArtifactError,
    RankerMetadata,
    artifact_load_count,
    clear_ranker_cache,
    load_ranker,
    load_ranker_cached,
    save_ranker,
)
from smar.single_modal.rankers.encoder import TEXT_EMBEDDING_DIM, EncodedTexts, normalize_text
from smar.single_modal.rankers.features import (
    ENGAGEMENT_FEATURE_NAMES,
    MODALITIES,
    build_feature_arrays,
    engagement_features,
    item_texts,
    join_impressions_with_items,
    query_term_coverage,
    visual_embedding_matrix,
)
from smar.single_modal.rankers.models import RankerConfig, build_ranker, default_config
from smar.single_modal.rankers.training import (
    ValidationData,
    inverse_propensity_weights,
    make_pairs,
    ndcg_at_10_within_groups,
    pairwise_hinge_loss,
    preference_labels,
    score_frame,
    train_ranker,
)
from smar.storage.uris import local_path

TOPICS = ("cats", "volcanoes", "jazz", "sailing")
VISUAL_DIM = 32
ITEMS_PER_TOPIC = 8
SHOWN_PER_MODALITY = 8
RELEVANT_SHOWN = 3


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # These models are tiny: on a shared 2-core machine, intra-op OpenMP threads mostly wait on
    # each other and on other processes (measured 5-40x slower than a single thread).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --------------------------------------------------------------------------- synthetic fixture


def _topic_of(text: str) -> str | None:
    return next((topic for topic in TOPICS if topic in text), None)


class FakeTextEncoder:
    """Deterministic stand-in for MiniLM: unit vector near the topic named in the text, plus
    text-specific noise. Counts the rows it encodes, like the real encoder's counter."""

    def __init__(self, seed: int = 7, noise: float = 1.0) -> None:
        rng = np.random.default_rng(seed)
        centers = rng.normal(size=(len(TOPICS), TEXT_EMBEDDING_DIM))
        self.centers = centers / np.linalg.norm(centers, axis=1, keepdims=True)
        self.noise = noise
        self.rows_encoded = 0

    def __call__(self, texts: Sequence[object]) -> EncodedTexts:
        row_of_text: dict[str, int] = {}
        index = np.array(
            [row_of_text.setdefault(normalize_text(t), len(row_of_text)) for t in texts],
            dtype=np.int64,
        )
        unique = list(row_of_text)
        self.rows_encoded += len(unique)
        embeddings = np.zeros((len(unique), TEXT_EMBEDDING_DIM))
        for row, text in enumerate(unique):
            noise_rng = np.random.default_rng(zlib.crc32(text.encode()))
            vector = noise_rng.normal(size=TEXT_EMBEDDING_DIM) / math.sqrt(TEXT_EMBEDDING_DIM)
            topic = _topic_of(text)
            base = self.centers[TOPICS.index(topic)] if topic else 0.0
            vector = base + self.noise * vector
            embeddings[row] = vector / np.linalg.norm(vector)
        return EncodedTexts(unique, embeddings.astype(np.float32), index)


def synthetic_logs(seed: int, n_requests: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """(search_logs, items, true grade per impression) with the bronze columns."""
    rng = np.random.default_rng(seed)
    visual_centers = rng.normal(size=(len(TOPICS), VISUAL_DIM))
    item_rows = []
    for modality in MODALITIES:
        for topic_index, topic in enumerate(TOPICS):
            for k in range(ITEMS_PER_TOPIC):
                visual = None
                if modality in ("image", "video"):
                    visual = visual_centers[topic_index] + 0.7 * rng.normal(size=VISUAL_DIM)
                    visual = visual.astype(np.float32).tolist()
                impressions = int(rng.integers(0, 500))
                item_rows.append(
                    {
                        "ds": "2025-10-16",
                        "item_id": f"{modality}-{topic}-{k}",
                        "modality": modality,
                        "title": f"{topic} {modality} {k}" if modality != "image" else "",
                        "body": f"all about {topic}, variant {k}" if k % 4 else None,
                        "visual_embedding": visual,
                        "impression_count": impressions,
                        "click_count": int(rng.binomial(impressions, 0.1)),
                        "like_count": int(rng.binomial(impressions, 0.02)),
                        "share_count": int(rng.binomial(impressions, 0.01)),
                        "source": "generator",
                    }
                )
    items = pd.DataFrame(item_rows)

    log_rows, grades = [], []
    for request in range(n_requests):
        topic = TOPICS[int(rng.integers(len(TOPICS)))]
        query_variant = int(rng.integers(5))
        position = 1
        for modality in MODALITIES:
            relevant = [f"{modality}-{topic}-{k}" for k in rng.choice(ITEMS_PER_TOPIC, RELEVANT_SHOWN, replace=False)]
            others = [f"{modality}-{t}-{k}" for t in TOPICS if t != topic for k in range(ITEMS_PER_TOPIC)]
            shown = relevant + list(rng.choice(others, SHOWN_PER_MODALITY - RELEVANT_SHOWN, replace=False))
            for item_id in rng.permutation(shown):
                is_relevant = item_id.split("-")[1] == topic
                clicked = int(rng.random() < (0.55 if is_relevant else 0.08))
                dwell = float(rng.exponential(45.0 if is_relevant else 8.0)) if clicked else None
                log_rows.append(
                    {
                        "ds": "2025-10-16",
                        "request_id": f"r{request}",
                        "query_id": f"q-{topic}-{query_variant}",
                        "query_text": f"{topic} question {query_variant}",
                        "user_id": f"u{request % 17}",
                        "item_id": str(item_id),
                        "modality": modality,
                        "position": position,
                        "production_score": float(rng.normal()),
                        "clicked": clicked,
                        "dwell_seconds": dwell,
                        "source": "generator",
                    }
                )
                grades.append(1 if is_relevant else 0)
                position += 1
    return pd.DataFrame(log_rows), items, pd.Series(grades, name="grade")


@pytest.fixture(scope="module")
def synthetic():
    logs, items, grades = synthetic_logs(seed=11, n_requests=200)
    joined = join_impressions_with_items(logs, items)
    joined["grade"] = grades.to_numpy()
    return joined


def _split(joined: pd.DataFrame, modality: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = joined[joined["modality"] == modality].reset_index(drop=True)
    request_number = rows["request_id"].str[1:].astype(int)
    train = rows[request_number < 150].reset_index(drop=True)
    return train, rows[request_number >= 150].reset_index(drop=True)


# --------------------------------------------------------------------------- training end to end


@pytest.mark.parametrize("modality", MODALITIES)
def test_each_modality_beats_random_within_modality(synthetic, modality):
    # Given click logs of one modality, split by request, and features from a fake encoder
    train, held_out = _split(synthetic, modality)
    encode = FakeTextEncoder()
    train_features = build_feature_arrays(train, modality, encode=encode)
    held_out_features = build_feature_arrays(held_out, modality, encode=encode)
    validation = ValidationData(held_out_features, held_out["request_id"].to_numpy(), preference_labels(held_out))
    # When the ranker trains on click preferences
    model, history = train_ranker(
        modality,
        train_features,
        train["request_id"].to_numpy(),
        preference_labels(train),
        seed=3,
        epochs=6,
        batch_size=128,
        device="cpu",
        validation=validation,
    )
    # Then on held-out requests its NDCG@10 against the true grades beats random scores
    scores = score_frame(model, held_out_features, device="cpu")
    groups, grades = held_out["request_id"].to_numpy(), held_out["grade"].to_numpy()
    model_ndcg = ndcg_at_10_within_groups(scores, grades, groups)
    rng = np.random.default_rng(0)
    random_ndcg = np.mean([ndcg_at_10_within_groups(rng.random(len(grades)), grades, groups) for _ in range(20)])
    assert model_ndcg > random_ndcg + 0.2, (model_ndcg, random_ndcg)
    assert len(history) == 6 and history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(math.isfinite(record["validation_ndcg_at_10"]) for record in history)


def _answer_trainer(synthetic):
    """A function training the answer ranker on the synthetic rows (2 epochs, any seed and row
    weights) and scoring the held-out rows, and the number of training rows."""
    train, held_out = _split(synthetic, "answer")
    encode = FakeTextEncoder()
    features = build_feature_arrays(train, "answer", encode=encode)
    held_out_features = build_feature_arrays(held_out, "answer", encode=encode)
    labels, groups = preference_labels(train), train["request_id"].to_numpy()

    def scores_for(seed: int, row_weights: np.ndarray | None = None) -> np.ndarray:
        model, _ = train_ranker(
            "answer",
            features,
            groups,
            labels,
            seed=seed,
            epochs=2,
            batch_size=64,
            device="cpu",
            row_weights=row_weights,
        )
        return score_frame(model, held_out_features, device="cpu")

    return scores_for, len(labels)


def test_training_is_deterministic_under_a_seed(synthetic):
    # Given the same answer rows and seed twice, and a different seed once
    scores_for, _ = _answer_trainer(synthetic)

    # Then same seed gives identical scores, another seed different ones
    np.testing.assert_array_equal(scores_for(5), scores_for(5))
    assert not np.array_equal(scores_for(5), scores_for(6))


def test_training_without_any_preference_is_refused():
    features = {
        "query_embedding": np.zeros((2, 384)),
        "item_text_embedding": np.zeros((2, 384)),
        "engagement": np.zeros((2, 7)),
    }
    with pytest.raises(ValueError, match="no training pairs for modality 'web'"):
        train_ranker("web", features, ["r1", "r1"], [1.0, 1.0], epochs=1, device="cpu")


# --------------------------------------------------------------------------- features


def test_feature_building_encodes_each_unique_text_once(synthetic):
    # Given web rows where queries and items repeat across requests
    rows = synthetic[synthetic["modality"] == "web"].reset_index(drop=True)
    encode = FakeTextEncoder()
    # When
    features = build_feature_arrays(rows, "web", encode=encode)
    # Then the encoder saw each distinct query text and item text once, and rows keep order
    expected = rows["query_text"].nunique() + len(set(item_texts(rows)))
    assert encode.rows_encoded == expected < 2 * len(rows)
    assert features["query_embedding"].shape == (len(rows), TEXT_EMBEDDING_DIM)
    again = encode([rows["query_text"].iloc[5]])
    np.testing.assert_array_equal(features["query_embedding"][5], again.embeddings[0])


def test_visual_features_read_the_dimension_from_the_data(synthetic):
    rows = synthetic[synthetic["modality"] == "video"].reset_index(drop=True)
    features = build_feature_arrays(rows, "video", encode=FakeTextEncoder())
    # The caption (title and body) is encoded for visual items too.
    assert set(features) == {"query_embedding", "item_text_embedding", "visual_embedding", "engagement"}
    assert features["visual_embedding"].shape == (len(rows), VISUAL_DIM)
    assert features["item_text_embedding"].shape[0] == len(rows)


def test_query_term_coverage_counts_distinct_query_terms_found_in_the_item_text():
    coverage = query_term_coverage(
        ["photos of Hiking trail", "trail trail", "", None, "what is x"],
        ["Trail photo\nA look at hiking, boots", "no match", "anything", "x", None],
    )
    # "photos of hiking trail": hiking and trail of 4 terms; case and punctuation ignored.
    np.testing.assert_allclose(coverage[:, 0], [2 / 4, 0.0, 0.0, 0.0, 0.0])
    assert coverage.shape == (5, 1) and coverage.dtype == np.float32
    with pytest.raises(ValueError, match="2 query texts but 1 item texts"):
        query_term_coverage(["a", "b"], ["a"])


def test_engagement_features_hand_computed():
    # Given 8 impressions, 2 clicks, 0 likes, 1 share
    items = pd.DataFrame({"impression_count": [8], "click_count": [2], "like_count": [0], "share_count": [1]})
    # Then log1p counts and (count + 1) / (impressions + 2) rates, in the documented order
    expected = [math.log(9), math.log(3), 0.0, math.log(2), 3 / 10, 1 / 10, 2 / 10]
    np.testing.assert_allclose(engagement_features(items)[0], expected, rtol=1e-6)
    assert len(ENGAGEMENT_FEATURE_NAMES) == len(expected)


def test_engagement_features_null_and_negative_counts():
    items = pd.DataFrame(
        {
            "item_id": ["a", "b"],
            "impression_count": [4, None],
            "click_count": [1, 0],
            "like_count": [0, 0],
            "share_count": [0, 0],
        }
    )
    # Null counter: 0 by default (new item: smoothed rate 1/2), an error on request
    assert engagement_features(items)[1, 4] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"item_id='b'.*'impression_count' is null"):
        engagement_features(items, missing_counts="error")
    items.loc[0, "click_count"] = -1
    with pytest.raises(ValueError, match=r"item_id='a'.*'click_count' is negative"):
        engagement_features(items)


def test_item_texts_join_title_and_body_and_skip_empty_parts():
    items = pd.DataFrame({"title": ["T", "", None, "T"], "body": ["B", "B", None, float("nan")]})
    assert item_texts(items) == ["T\nB", "B", "", "T"]


def test_visual_embedding_errors_name_the_item():
    items = pd.DataFrame({"item_id": ["i1", "i2"], "visual_embedding": [[1.0, 2.0], None]})
    with pytest.raises(ValueError, match=r"item_id='i2'.*is null"):
        visual_embedding_matrix(items)
    items = pd.DataFrame({"item_id": ["i1", "i2"], "visual_embedding": [[1.0, 2.0], [1.0]]})
    with pytest.raises(ValueError, match=r"item_id='i2'.*expected \(2,\)"):
        visual_embedding_matrix(items)


def test_join_refuses_unknown_items_and_modality_mismatch():
    logs = pd.DataFrame({"request_id": ["r1"], "item_id": ["x"], "modality": ["web"]})
    items = pd.DataFrame({"item_id": ["y"], "modality": ["web"], "impression_count": [1]})
    with pytest.raises(ValueError, match="1 impressions have no item row"):
        join_impressions_with_items(logs, items)
    items = pd.DataFrame({"item_id": ["x"], "modality": ["image"], "impression_count": [1]})
    with pytest.raises(ValueError, match="impression modality 'web' != item modality 'image'"):
        join_impressions_with_items(logs, items)


# --------------------------------------------------------------------------- labels, pairs, loss


def test_preference_labels_order_clicks_by_dwell():
    # Given: no click, click without dwell, short clicks 5 s and 20 s, long clicks 30 s and 300 s
    frame = pd.DataFrame({"clicked": [0, 1, 1, 1, 1, 1], "dwell_seconds": [None, None, 5.0, 20.0, 30.0, 300.0]})
    labels = preference_labels(frame, long_dwell_seconds=30.0)
    # Then 0 < 1 (click, dwell 0) < 1 + 5/35 < 1 + 20/50 < 2 + 30/60 < 2 + 300/330
    np.testing.assert_allclose(labels, [0.0, 1.0, 1 + 5 / 35, 1.4, 2.5, 2 + 300 / 330])
    assert (np.diff(labels) > 0).all()


def test_preference_labels_refuse_non_binary_clicks():
    with pytest.raises(ValueError, match="row 1: column 'clicked'"):
        preference_labels(pd.DataFrame({"clicked": [0, 2], "dwell_seconds": [None, 3.0]}))


def test_make_pairs_only_inside_groups_and_only_strict_preferences():
    # Given group a with labels 0, 1, 2 and group b with a tie
    groups = ["a", "b", "a", "a", "b"]
    labels = [0.0, 1.0, 1.0, 2.0, 1.0]
    pairs = make_pairs(groups, labels, None, np.random.default_rng(0))
    # Then (preferred, other): 2>0, 3>0, 3>2 only
    assert sorted(map(tuple, pairs.tolist())) == [(2, 0), (3, 0), (3, 2)]


def test_make_pairs_caps_each_group_reproducibly():
    groups = ["a"] * 5
    labels = [0.0, 1.0, 2.0, 3.0, 4.0]  # 10 pairs
    first = make_pairs(groups, labels, 4, np.random.default_rng(1))
    second = make_pairs(groups, labels, 4, np.random.default_rng(1))
    assert len(first) == 4 and np.array_equal(first, second)
    assert all(labels[i] > labels[j] for i, j in first)


def test_pairwise_hinge_loss_hand_computed():
    # margin 1: differences 0.3 -> 0.7, 2.0 -> 0, -0.5 -> 1.5; mean = 2.2 / 3
    preferred = torch.tensor([1.3, 3.0, 0.0])
    other = torch.tensor([1.0, 1.0, 0.5])
    assert pairwise_hinge_loss(preferred, other).item() == pytest.approx(2.2 / 3)


def test_weighted_pairwise_hinge_loss_is_the_weighted_mean():
    # hinges 0.7, 0, 1.5 with weights 1, 5, 2: (0.7 + 0 + 3.0) / 8
    preferred = torch.tensor([1.3, 3.0, 0.0])
    other = torch.tensor([1.0, 1.0, 0.5])
    weights = torch.tensor([1.0, 5.0, 2.0])
    assert pairwise_hinge_loss(preferred, other, weights=weights).item() == pytest.approx(3.7 / 8)
    # equal weights give the plain mean
    assert pairwise_hinge_loss(preferred, other, weights=torch.full((3,), 4.0)).item() == pytest.approx(2.2 / 3)


def test_inverse_propensity_weights_hand_computed_and_capped():
    examination = [1.0, 0.5, 0.25, 0.05]
    # slot 1 -> 1, slot 2 -> 2, slot 3 -> 4, slot 4 -> 20 capped at 10, slot 9 -> past the curve: its last value
    weights = inverse_propensity_weights([1, 2, 3, 4, 9], examination, clip=10.0)
    np.testing.assert_allclose(weights, [1.0, 2.0, 4.0, 10.0, 10.0])
    with pytest.raises(ValueError, match="1-based"):
        inverse_propensity_weights([0], examination)
    with pytest.raises(ValueError, match="positive"):
        inverse_propensity_weights([1], [1.0, 0.0])


def test_row_weights_change_training_and_bad_weights_are_refused(synthetic):
    # Given the answer rows, trained without and with weights that favour some rows' pairs
    scores_for, rows = _answer_trainer(synthetic)
    weights = np.where(np.arange(rows) % 2 == 0, 10.0, 0.1)
    # Then equal weights train exactly as no weights, unequal ones differently
    np.testing.assert_allclose(scores_for(5, np.ones(rows)), scores_for(5), rtol=1e-5, atol=1e-6)
    assert not np.allclose(scores_for(5, weights), scores_for(5))
    with pytest.raises(ValueError, match="one positive finite weight per row"):
        scores_for(5, np.zeros(rows))


def test_ndcg_at_10_hand_computed_with_stable_ties_and_empty_groups():
    # Group a: ranked grades 0, 1, 2 -> DCG 1/log2(3) + 2/log2(4); ideal 2 + 1/log2(3)
    # Group b: tie in score keeps input order -> grade 0 first -> DCG 1/log2(3); ideal 1
    # Group c: nothing relevant -> left out of the mean
    scores = [3.0, 2.0, 1.0, 5.0, 5.0, 1.0]
    grades = [0, 1, 2, 0, 1, 0]
    groups = ["a", "a", "a", "b", "b", "c"]
    group_a = (1 / math.log2(3) + 1.0) / (2 + 1 / math.log2(3))
    group_b = 1 / math.log2(3)
    expected = (group_a + group_b) / 2
    assert ndcg_at_10_within_groups(scores, grades, groups) == pytest.approx(expected)
    assert math.isnan(ndcg_at_10_within_groups([1.0], [0], ["c"]))


# --------------------------------------------------------------------------- models and scoring


def test_build_ranker_checks_modality_and_kind():
    with pytest.raises(ValueError, match="needs kind 'visual'"):
        RankerConfig(modality="image", kind="text")
    with pytest.raises(ValueError, match="not 'answer'"):
        build_ranker("answer", default_config("web"))
    with pytest.raises(ValueError, match="needs visual_dim"):
        default_config("video")
    with pytest.raises(ValueError, match="modality must be one of"):
        default_config("podcast")
    with pytest.raises(ValueError, match="query_dim 384 != caption_dim 16"):
        default_config("image", visual_dim=32, caption_dim=16)


def test_visual_rankers_read_the_caption():
    # Two rows that differ only in the caption embedding get different scores.
    torch.manual_seed(0)
    model = build_ranker("image", default_config("image", visual_dim=12)).eval()
    features = _random_features("visual", rows=2)
    for key in ("query_embedding", "visual_embedding", "engagement"):
        features[key][1] = features[key][0]
    scores = score_frame(model, features, device="cpu")
    assert scores[0] != scores[1]


def test_config_json_round_trip():
    config = default_config("image", visual_dim=48, hidden_sizes=(16, 8), dropout=0.2)
    assert RankerConfig.from_dict(json.loads(config.to_json())) == config


def _random_features(kind: str, rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = {
        "query_embedding": rng.normal(size=(rows, 384)).astype(np.float32),
        "item_text_embedding": rng.normal(size=(rows, 384)).astype(np.float32),
        "engagement": rng.random(size=(rows, 7)).astype(np.float32),
    }
    if kind == "visual":
        features["visual_embedding"] = rng.normal(size=(rows, 12)).astype(np.float32)
    return features


@pytest.mark.parametrize("modality", ["web", "video"])
def test_score_frame_does_not_depend_on_its_batch_size(modality):
    torch.manual_seed(0)
    model = build_ranker(modality, default_config(modality, visual_dim=12))
    features = _random_features(model.config.kind, rows=50)
    small = score_frame(model, features, batch_size=7, device="cpu")
    large = score_frame(model, features, batch_size=1000, device="cpu")
    assert small.shape == (50,) and small.dtype == np.float32
    np.testing.assert_allclose(small, large, rtol=1e-5, atol=1e-6)


def test_score_frame_names_missing_features():
    model = build_ranker("web")
    features = _random_features("text", rows=3)
    del features["item_text_embedding"]
    with pytest.raises(KeyError, match="item_text_embedding"):
        score_frame(model, features, device="cpu")
    visual_model = build_ranker("image", default_config("image", visual_dim=12))
    with pytest.raises(KeyError, match="visual_embedding"):
        score_frame(visual_model, _random_features("text", rows=3), device="cpu")


# --------------------------------------------------------------------------- artifacts


def _trained_looking_ranker(modality: str, seed: int = 0):
    torch.manual_seed(seed)
    model = build_ranker(modality, default_config(modality, visual_dim=12))
    model.set_engagement_standardization(torch.rand(20, 7) * 5)
    return model.eval()


def _metadata(modality: str) -> RankerMetadata:
    return RankerMetadata(
        model_version="v1",
        modality=modality,
        training_table_versions={"bronze.search_logs": 3, "bronze.items": 2},
        validation_metrics={"ndcg_at_10": 0.71},
        query_split={"description": "hash(query_id) % 10 < 8 trains", "validation_fraction": 0.2},
    )


@pytest.mark.parametrize("modality", MODALITIES)
def test_artifact_round_trip_gives_identical_scores(tmp_path, modality):
    # Given a ranker saved with its metadata
    model = _trained_looking_ranker(modality)
    features = _random_features(model.config.kind, rows=30)
    metadata = _metadata(modality)
    path = local_path(save_ranker(model, tmp_path / modality, metadata=metadata))
    # When loaded back
    loaded = load_ranker(path, modality)
    # Then same config, same metadata, bit-identical scores
    assert loaded.config == model.config
    assert loaded.metadata == metadata
    np.testing.assert_array_equal(
        score_frame(loaded.model, features, device="cpu"), score_frame(model, features, device="cpu")
    )


def _assert_names_path_and_modality(error: pytest.ExceptionInfo, path, modality: str) -> None:
    message = str(error.value)
    assert str(path) in message and repr(modality) in message, message


def test_missing_artifact_files_are_named(tmp_path):
    # Given no directory at all, then a directory without its state_dict
    with pytest.raises(RankerArtifactError) as error:
        load_ranker(tmp_path / "nowhere", "web")
    _assert_names_path_and_modality(error, tmp_path / "nowhere", "web")
    path = local_path(save_ranker(_trained_looking_ranker("web"), tmp_path / "web", metadata=_metadata("web")))
    (path / "state_dict.pt").unlink()
    with pytest.raises(RankerArtifactError, match=r"missing files \['state_dict.pt'\]") as error:
        load_ranker(path, "web")
    _assert_names_path_and_modality(error, path, "web")


def test_truncated_state_dict_is_refused(tmp_path):
    path = local_path(save_ranker(_trained_looking_ranker("image"), tmp_path / "image", metadata=_metadata("image")))
    state_file = path / "state_dict.pt"
    state_file.write_bytes(state_file.read_bytes()[:200])
    with pytest.raises(RankerArtifactError, match="cannot read state_dict.pt") as error:
        load_ranker(path, "image")
    _assert_names_path_and_modality(error, path, "image")


def test_bad_json_and_wrong_shapes_are_refused(tmp_path):
    path = local_path(save_ranker(_trained_looking_ranker("answer"), tmp_path / "answer", metadata=_metadata("answer")))
    # Bad JSON in config.json
    original = (path / "config.json").read_text()
    (path / "config.json").write_text(original[:-5])
    with pytest.raises(RankerArtifactError, match="cannot read config.json") as error:
        load_ranker(path, "answer")
    _assert_names_path_and_modality(error, path, "answer")
    # A config whose hidden sizes do not fit the saved weights
    config = json.loads(original)
    config["hidden_sizes"] = [5]
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(RankerArtifactError, match="does not fit config.json"):
        load_ranker(path, "answer")


def test_artifact_of_another_modality_is_refused(tmp_path):
    path = local_path(save_ranker(_trained_looking_ranker("web"), tmp_path / "web", metadata=_metadata("web")))
    with pytest.raises(RankerArtifactError, match="config.json says modality 'web'") as error:
        load_ranker(path, "answer")
    _assert_names_path_and_modality(error, path, "answer")


def test_cached_loading_reads_each_artifact_once_until_it_changes(tmp_path):
    # Given a saved ranker and an empty cache
    clear_ranker_cache()
    path = local_path(save_ranker(_trained_looking_ranker("video"), tmp_path / "video", metadata=_metadata("video")))
    loads_before = artifact_load_count()
    # When many batches ask for it
    first = load_ranker_cached(path, "video")
    for _ in range(10):
        assert load_ranker_cached(path, "video") is first
    # Then it was read from disk once
    assert artifact_load_count() - loads_before == 1
    # When the artifact is rewritten (a new mtime) / Then it is read again, with the new weights
    save_ranker(_trained_looking_ranker("video", seed=1), path, metadata=_metadata("video"))
    state_file = path / "state_dict.pt"
    stat = state_file.stat()
    os.utime(state_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = load_ranker_cached(path, "video")
    assert second is not first and artifact_load_count() - loads_before == 2
    assert not torch.equal(second.model.head[0].weight, first.model.head[0].weight)

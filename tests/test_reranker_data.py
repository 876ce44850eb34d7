"""Reranker inputs: page assembly at pinned Delta versions, the budget, the text cache, and the
IterableDataset's sharding across DataLoader workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from smar.annotation.strategies import label_count
from smar.config import SmarSettings
from smar.lake import Lakehouse
from smar.reranker.dataset import PageDataset, collate_pages, page_loader
from smar.reranker.inputs import build_page_store, pin_versions, read_page_labels
from smar.reranker.store import NUMERIC_FEATURE_NAMES, attach_page_labels, restrict_to_budget
from smar.reranker.text_cache import encode_texts_cached
from smar.vocabulary import MODALITIES
from tests.reranker_helpers import (
    DS,
    HASH_ENCODER_NAME,
    CountingHashEncoder,
    budgeted_truth_labels,
    build_tiny_lake,
    write_labels,
)

ZSCORE = NUMERIC_FEATURE_NAMES.index("score_zscore_in_modality")
PERCENTILE = NUMERIC_FEATURE_NAMES.index("score_percentile_in_modality")


@pytest.fixture(scope="module")
def tiny_lake(spark, tmp_path_factory):
    """One tiny generator day, stand-in scores, and page labels on 50% (top) of page_train
    queries' candidates, from truth.relevance."""
    root = tmp_path_factory.mktemp("reranker-data")
    settings = SmarSettings(warehouse=root / "warehouse", artifacts=root / "artifacts", reports=root / "reports")
    lake = Lakehouse(spark, settings)
    build_tiny_lake(spark, lake)
    write_labels(spark, lake, budgeted_truth_labels(lake, ds=DS, budget=0.5, splits=["page_train"]))
    return lake


def _store(lake, versions, **kwargs):
    return build_page_store(
        lake, versions, ds_values=[DS], encode=CountingHashEncoder(), encoder_name=HASH_ENCODER_NAME, **kwargs
    )


def test_query_pages_hold_every_candidate_with_within_modality_features(tiny_lake):
    # Given the tiny day's scores
    versions = pin_versions(tiny_lake)
    logs = tiny_lake.read_arrow("bronze.search_logs").to_pandas()
    expected_pages = logs.groupby("query_id")["item_id"].nunique()

    # When query pages are assembled
    store = _store(tiny_lake, versions)

    # Then there is one page per query, with all its distinct candidates
    assert sorted(store.query_id) == sorted(expected_pages.index)
    sizes = dict(zip(store.query_id, store.page_sizes, strict=True))
    assert sizes == expected_pages.to_dict()
    # and within each (page, modality) the z-score has mean 0 and the percentile follows the rank
    frame = store.item_frame().assign(z=store.numeric[:, ZSCORE], pct=store.numeric[:, PERCENTILE])
    for _, group in frame.groupby(["page_id", "modality"]):
        assert abs(group["z"].mean()) < 1e-5
        n = len(group)
        expected = (n - group["rank_in_modality"]) / (n - 1) if n > 1 else np.ones(n)
        np.testing.assert_allclose(group["pct"], expected, rtol=1e-6)
        best = group.loc[group["rank_in_modality"] == 1, "single_modal_score"].iloc[0]
        assert best == group["single_modal_score"].max()
    assert store.text_dim == 8 and store.visual_dim == 32 and store.user_dim > 0
    assert set(store.input_versions) >= {"silver.single_modal_scores", "bronze.items", "bronze.search_logs"}


def test_request_pages_are_one_per_logged_request(tiny_lake):
    versions = pin_versions(tiny_lake)
    store = _store(tiny_lake, versions, page_unit="request", query_splits=["test"])
    logs = tiny_lake.read_arrow("bronze.search_logs").to_pandas()
    from smar.splits import query_split

    logs = logs[logs["query_id"].map(query_split) == "test"]
    assert store.n_pages == logs["request_id"].nunique()
    assert store.n_items == len(logs)
    # each request page carries its user's dense features
    users = tiny_lake.read_arrow("bronze.users").to_pandas().set_index(["ds", "user_id"])["dense_features"]
    user_of_request = logs.drop_duplicates("request_id").set_index("request_id")["user_id"]
    for page in (0, store.n_pages - 1):
        expected = users[(DS, user_of_request[store.request_id[page]])]
        np.testing.assert_allclose(store.user_features[page], expected, rtol=1e-6)
    # positions come back in page order, 1..n per request
    first = store.page(0)
    assert len(first["modality_id"]) == int(store.page_sizes[0])
    assert list(store.position[: store.page_sizes[0]]) == list(range(1, int(store.page_sizes[0]) + 1))


def test_the_dataset_reads_exactly_the_pinned_version(spark, tiny_lake):
    # Given versions pinned now, and labels added afterwards (a new Delta version)
    pinned = pin_versions(tiny_lake)
    store = attach_page_labels(
        _store(tiny_lake, pinned),
        read_page_labels(tiny_lake, pinned["silver.page_labels"], ds_values=[DS]),
    )
    before = int(store.label_mask.sum())
    write_labels(
        spark,
        tiny_lake,
        budgeted_truth_labels(tiny_lake, ds=DS, budget=1.0, splits=["page_valid"], annotator="late-annotator"),
    )
    assert tiny_lake.version("silver.page_labels") > pinned["silver.page_labels"]

    # When the pages are read again at the pinned version, and at the new one
    again = read_page_labels(tiny_lake, pinned["silver.page_labels"], ds_values=[DS])
    newer = read_page_labels(tiny_lake, tiny_lake.version("silver.page_labels"), ds_values=[DS])

    # Then the pinned read sees exactly the old labels, the new read sees more
    assert len(again) == before
    assert len(newer) > before
    labelled = attach_page_labels(_store(tiny_lake, pinned), again)
    np.testing.assert_array_equal(labelled.labels, store.labels)  # NaN-aware equality

    # and a DataLoader with two workers yields each page of that store exactly once per epoch
    dataset = PageDataset(labelled, seed=11)
    seen: list[int] = []
    for epoch in (1, 2):
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=3, collate_fn=collate_pages, num_workers=2)
        epoch_pages = [int(index) for batch in loader for index in batch.page_index]
        assert sorted(epoch_pages) == list(range(labelled.n_pages))
        seen.append(epoch_pages)
    assert seen[0] != seen[1]  # a new order each epoch
    # and the page labels that reach a batch are the pinned ones
    batch = next(iter(page_loader(labelled, batch_pages=labelled.n_pages, shuffle=False)))
    assert int(batch.label_mask.sum()) == before


def test_the_page_order_is_deterministic_under_a_seed(tiny_lake):
    store = _store(tiny_lake, pin_versions(tiny_lake))
    orders = []
    for _ in range(2):
        dataset = PageDataset(store, seed=5, epoch=3)
        orders.append([page["page_index"] for page in dataset])
    assert orders[0] == orders[1]
    # the shards of two workers partition the epoch's order
    shards = [PageDataset(store, seed=5, epoch=3).shard(worker, 2) for worker in (0, 1)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(store.n_pages))


def test_collate_pads_and_masks():
    # Given two pages of 2 and 3 items, one label missing
    pages = []
    for index, size in enumerate((2, 3)):
        pages.append(
            {
                "page_index": index,
                "modality_id": np.arange(size),
                "numeric": np.ones((size, 4), np.float32),
                "text_embedding": np.ones((size, 2), np.float32),
                "visual_embedding": np.ones((size, 1), np.float32),
                "single_modal_score": np.arange(size, dtype=np.float32),
                "labels": np.array([1.0, np.nan, 2.0][:size], np.float32),
                "query_embedding": np.ones(2, np.float32),
                "user_features": np.zeros(3, np.float32),
            }
        )
    # When they are collated
    batch = collate_pages(pages)
    # Then tensors are [pages, items, features] with padding masked and NaN labels masked
    assert batch.numeric.shape == (2, 3, 4) and batch.user_features.shape == (2, 3)
    assert batch.item_mask.tolist() == [[True, True, False], [True, True, True]]
    assert batch.label_mask.tolist() == [[True, False, False], [True, False, True]]
    assert batch.labels[1].tolist() == [1.0, 0.0, 2.0]
    assert torch.all(batch.numeric[0, 2] == 0)


def test_budget_keeps_label_count_items_per_modality(tiny_lake):
    # Given fully labelled pages (labels on every candidate)
    store = _store(tiny_lake, pin_versions(tiny_lake))
    full = store.with_labels(np.full(store.n_items, 2.0, dtype=np.float32))

    # When a 30% top budget is emulated
    budgeted = restrict_to_budget(full, strategy="top", budget=0.3)

    # Then each (page, modality) keeps label_count(n, 0.3) labels, on its best-ranked items
    frame = budgeted.item_frame()
    for _, group in frame.groupby(["page_id", "modality"]):
        kept = group[group["label"].notna()]
        assert len(kept) == label_count(len(group), 0.3)
        assert sorted(kept["rank_in_modality"]) == list(range(1, len(kept) + 1))
    assert set(frame["modality"]) <= set(MODALITIES)


def test_each_text_is_encoded_once_across_calls(tmp_path):
    encoder = CountingHashEncoder()
    cache = tmp_path / "text_embeddings"
    first = encode_texts_cached(["a", "b", "a"], encode=encoder, cache=cache)
    assert encoder.encoded == 2
    second = encode_texts_cached(["b", "c"], encode=encoder, cache=cache)
    assert encoder.encoded == 3  # only "c" was new
    np.testing.assert_array_equal(first[1], second[0])
    np.testing.assert_array_equal(first[0], first[2])

"""The synthetic generator keeps the promises its docstring makes."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from smar.contracts import load_contract
from smar.ingest.generator import GeneratorConfig, generate_day
from smar.vocabulary import MODALITIES


@pytest.fixture(scope="module")
def demo_day():
    return generate_day("2026-11-01", size="demo", seed=7)


def test_same_seed_and_day_give_identical_tables():
    # Given the same size, seed and day, When generated twice, Then every table is equal.
    first = generate_day("2026-11-01", size="tiny", seed=3)
    second = generate_day("2026-11-01", size="tiny", seed=3)
    for name in ("search_logs", "items", "users", "relevance"):
        assert getattr(first, name).equals(getattr(second, name)), name


def test_other_day_or_seed_changes_the_traffic():
    base = generate_day("2026-11-01", size="tiny", seed=3)
    other_day = generate_day("2026-11-02", size="tiny", seed=3)
    other_seed = generate_day("2026-11-01", size="tiny", seed=4)
    assert not base.search_logs.column("clicked").equals(other_day.search_logs.column("clicked"))
    assert not base.search_logs.column("item_id").equals(other_seed.search_logs.column("item_id"))


def test_tables_match_their_contracts(demo_day):
    assert demo_day.search_logs.schema.equals(load_contract("bronze.search_logs").arrow_schema())
    assert demo_day.items.schema.equals(load_contract("bronze.items").arrow_schema())
    assert demo_day.users.schema.equals(load_contract("bronze.users").arrow_schema())
    assert demo_day.relevance.schema.equals(load_contract("truth.relevance").arrow_schema())


def test_size_knob_scales_impressions():
    tiny = GeneratorConfig.preset("tiny")
    demo = GeneratorConfig.preset("demo")
    large = GeneratorConfig.preset("large")
    assert tiny.requests_per_day * tiny.page_length < demo.requests_per_day * demo.page_length
    assert large.requests_per_day * large.page_length == 1_000_000


def test_position_bias_is_visible_in_click_through_rate(demo_day):
    logs = demo_day.search_logs.to_pandas()
    ctr = logs.groupby("position")["clicked"].mean()
    # Top slot is clicked several times more often than slot 10, and CTR falls over the page.
    assert ctr.loc[1] > 3 * ctr.loc[10]
    assert ctr.loc[1:5].mean() > ctr.loc[6:10].mean() > ctr.loc[20:].mean()


def test_clicks_and_dwell_follow_relevance(demo_day):
    logs = demo_day.search_logs.to_pandas()
    truth = demo_day.relevance.to_pandas()
    joined = logs.merge(truth[["query_id", "item_id", "grade"]], on=["query_id", "item_id"], how="left")
    assert joined["grade"].notna().all()
    by_grade = joined.groupby("grade")["clicked"].mean()
    assert by_grade.is_monotonic_increasing
    dwell = joined[joined.clicked == 1].groupby("grade")["dwell_seconds"].median()
    assert dwell.loc[4] > 2 * dwell.loc[0]
    assert joined.loc[joined.clicked == 0, "dwell_seconds"].isna().all()


def test_modality_score_scales_really_differ(demo_day):
    logs = demo_day.search_logs.to_pandas()
    spread = logs.groupby("modality")["production_score"].agg(["min", "max", "median"])
    assert set(spread.index) == set(MODALITIES)
    # image scores are probabilities, web scores are BM25-like, answers are 0-100 confidences
    assert spread.loc["image", "max"] <= 1.0 and spread.loc["image", "min"] >= 0.0
    assert spread.loc["web", "median"] > 5 * spread.loc["image", "median"]
    assert spread.loc["answer", "median"] > 3 * spread.loc["web", "median"]
    assert spread.loc["video", "min"] < 0 < spread.loc["video", "max"]


def test_naive_raw_score_fusion_is_miscalibrated(demo_day):
    # Within a modality the production score tracks the hidden grade; across modalities the raw
    # scale does not: the same grade gets very different raw scores.
    logs = demo_day.search_logs.to_pandas().drop_duplicates(["query_id", "item_id"])
    truth = demo_day.relevance.to_pandas()
    joined = logs.merge(truth[["query_id", "item_id", "grade"]], on=["query_id", "item_id"])
    for modality in ("web", "image", "video"):
        part = joined[joined.modality == modality]
        assert np.corrcoef(part.production_score, part.grade)[0, 1] > 0.3, modality
    grade_two = joined[joined.grade == 2].groupby("modality")["production_score"].median()
    assert grade_two.max() / max(abs(grade_two.min()), 1e-6) > 10


def test_every_grade_occurs_and_visual_embeddings_only_on_visual_items(demo_day):
    grades = set(demo_day.relevance.column("grade").to_pylist())
    assert grades == {0, 1, 2, 3, 4}
    items = demo_day.items.to_pandas()
    visual = items.modality.isin(["image", "video"])
    assert items.loc[visual, "visual_embedding"].map(len).eq(32).all()
    assert items.loc[~visual, "visual_embedding"].isna().all()
    assert (items.title.str.len() > 0).all()
    assert pc.all(pc.equal(demo_day.search_logs.column("source"), "generator")).as_py()

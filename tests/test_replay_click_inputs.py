"""What the click estimates read from the tables, on the embedded engine: exploration pages in Spark
agree with the pandas reference, the window's counts, the production positions, the truth, and a
warehouse written before the click columns existed still takes new replay rows."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from smar.contracts import load_contract
from smar.errors import InputRefused
from smar.ingest.generator import generate_day
from smar.propensities import exploration_rows, identify_exploration_pages, position_counts
from smar.replay.click_inputs import (
    exploration_pages,
    production_positions,
    true_attractiveness,
    window_logs,
    window_traffic,
)
from smar.replay.oracle_clicks import attach_true_attractiveness
from smar.storage.uris import join

DAYS = ("2026-10-31", "2026-11-01")


def ingest_generated(spark, lake, days=DAYS, size="tiny") -> pd.DataFrame:
    """Write generated days straight into bronze (no validation: the generator's rows are valid)."""
    frames = []
    for ds in days:
        day = generate_day(ds, size=size, seed=3)
        for table, arrow in (("bronze.search_logs", day.search_logs), ("bronze.users", day.users),
                             ("truth.relevance", day.relevance)):  # fmt: skip
            lake.overwrite_slice(spark.createDataFrame(arrow.to_pandas()), table, {"ds": ds})
        frames.append(day.search_logs.to_pandas())
    return pd.concat(frames, ignore_index=True)


def test_exploration_pages_in_spark_match_the_pandas_reference(spark, lake) -> None:
    logs = ingest_generated(spark, lake, size="demo", days=DAYS[-1:])
    # Given a page with a null production_score too (it cannot be decided)
    reference, _ = identify_exploration_pages(logs)
    spark_pages = exploration_pages(window_logs(lake, DAYS[0], DAYS[-1])).toPandas()
    merged = reference.merge(
        spark_pages, on=["ds", "request_id"], suffixes=("_pandas", "_spark"), validate="one_to_one"
    )
    assert len(merged) == len(reference) == logs.groupby(["ds", "request_id"]).ngroups
    assert (merged["is_exploration_pandas"] == merged["is_exploration_spark"]).all()
    assert (merged["undecided_pandas"] == merged["undecided_spark"]).all()
    # about 5% of demo requests are randomised (exploration_fraction), none undecided
    assert 0.02 < merged["is_exploration_spark"].mean() < 0.09 and not merged["undecided_spark"].any()


def test_an_unscored_page_is_undecided(spark) -> None:
    rows = pd.DataFrame({
        "ds": "d", "request_id": ["p", "p", "q", "q"], "modality": "web", "position": [1, 2, 1, 2],
        "production_score": [1.0, None, 1.0, 2.0],
    })  # fmt: skip
    pages = exploration_pages(spark.createDataFrame(rows)).toPandas().set_index("request_id")
    assert pages.loc["p", "undecided"] and not pages.loc["p", "is_exploration"]
    assert pages.loc["q", "is_exploration"] and not pages.loc["q", "undecided"]


def test_window_traffic_counts_the_exploration_pages(spark, lake) -> None:
    logs = ingest_generated(spark, lake)
    traffic = window_traffic(lake, "2026-10-01", DAYS[-1])
    pages, _ = identify_exploration_pages(logs)
    expected = position_counts(exploration_rows(logs, pages))
    assert traffic.counts.impressions.tolist() == expected.impressions.tolist()
    assert traffic.counts.clicks.tolist() == expected.clicks.tolist()
    assert traffic.counts.fingerprint() == expected.fingerprint()  # the same rows, whatever the collect order
    assert (traffic.ds_start, traffic.ds_end) == DAYS  # the days present, not the asked window
    assert traffic.exploration_pages == int(pages["is_exploration"].sum())
    assert traffic.decided_pages == len(pages)
    with pytest.raises(InputRefused, match="no pages"):
        window_traffic(lake, "2020-01-01", "2020-01-31")


def test_production_positions_refuse_a_production_order_that_moved(spark, lake) -> None:
    logs = ingest_generated(spark, lake, days=DAYS[-1:])
    queries = sorted(logs["query_id"].unique())[:5]
    positions = production_positions(lake, DAYS[0], DAYS[-1], queries)
    assert set(positions["query_id"]) <= set(queries) and positions["production_position"].min() >= 1
    # When, on another day, a new production order swaps a page's two best web items (the page still
    # looks production-ordered: the scores stay with the slots)
    moved = logs.assign(ds=DAYS[0], request_id=logs["request_id"] + "-b")
    production = ~identify_exploration_pages(moved)[0].set_index("request_id")["is_exploration"]
    first_page = moved[moved["request_id"].map(production)]["request_id"].iloc[0]
    web = moved.index[(moved["request_id"] == first_page) & (moved["modality"] == "web")][:2]
    moved.loc[web, "item_id"] = moved.loc[web, "item_id"].to_numpy()[::-1]
    lake.overwrite_slice(spark.createDataFrame(moved), "bronze.search_logs", {"ds": DAYS[0]})
    query = moved.loc[web[0], "query_id"]
    assert len(production_positions(lake, DAYS[-1], DAYS[-1], [query])) > 0  # one day alone is consistent
    with pytest.raises(InputRefused, match="production order changed"):
        production_positions(lake, DAYS[0], DAYS[-1], [query])


def test_true_attractiveness_from_the_tables(spark, lake) -> None:
    logs = ingest_generated(spark, lake, days=DAYS[-1:])
    scope = logs.head(64)
    day = generate_day(DAYS[-1], size="tiny", seed=3)
    expected = attach_true_attractiveness(scope, day.relevance.to_pandas(), day.users.to_pandas())
    got = true_attractiveness(lake, scope)
    assert got is not None
    np.testing.assert_allclose(got, expected["true_attractiveness"].to_numpy())
    # real data: no truth table, no oracle
    lake_without_truth = type(lake)(
        spark, lake.settings.model_copy(update={"warehouse": join(lake.settings.warehouse, "x")})
    )
    assert true_attractiveness(lake_without_truth, scope) is None


def test_an_old_replay_metrics_table_gains_the_new_columns(spark, lake) -> None:
    # Given gold.replay_metrics written before reliable / unreliable_reason / mde / click_propensities_version
    contract = load_contract("gold.replay_metrics")
    added = ("reliable", "unreliable_reason", "mde", "click_propensities_version")
    old_columns = [column for column in contract.columns if column.name not in added]
    row = {column.name: None for column in old_columns}
    row.update(run_id="old", control="production", candidate="c", metric="ndcg", segment="all", k=10,
               label_source="oracle", delta=0.1, n_queries=40)  # fmt: skip
    ddl = ", ".join(f"`{column.name}` {column.type}" for column in old_columns)
    old = spark.createDataFrame([tuple(row[column.name] for column in old_columns)], ddl)
    old.write.format("delta").partitionBy("run_id").save(lake.uri("gold.replay_metrics"))
    # When a new replay writes its rows
    new = {**row, "run_id": "new", "reliable": False, "unreliable_reason": "a gate failed", "mde": 0.5,
           "created_at": datetime.now(UTC)}  # fmt: skip
    lake.overwrite_slice([new], "gold.replay_metrics", {"run_id": "new"})
    # Then the table has the contract's columns, the new row its values and the old row nulls
    stored = lake.read("gold.replay_metrics").toPandas().set_index("run_id")
    assert set(added) <= set(stored.columns)
    assert stored.loc["new", "unreliable_reason"] == "a gate failed" and stored.loc["new", "mde"] == 0.5
    assert pd.isna(stored.loc["old", "reliable"]) and stored.loc["old", "delta"] == 0.1
    assert lake.add_missing_columns("gold.replay_metrics") == []  # nothing left to add


def test_too_little_randomised_traffic_gives_a_reason_not_a_number(spark, lake) -> None:
    # Given one tiny day: 60 requests, a handful of them randomised
    from smar.replay.inputs import build_replay_inputs
    from smar.replay.jobs import ReplayConfig, estimate_clicks, propensity_window
    from smar.replay.measures import MetricConfig
    from smar.splits import SPLITS

    ingest_generated(spark, lake, days=DAYS[-1:])
    config = ReplayConfig(metrics=MetricConfig(query_splits=SPLITS))
    inputs = build_replay_inputs(spark, lake, control="production", candidate="production", ds_start=DAYS[-1],
                                 ds_end=DAYS[-1], config=config.metrics)  # fmt: skip
    # When the click estimates are computed
    clicks = estimate_clicks(lake, inputs, ds_start=DAYS[-1], ds_end=DAYS[-1], config=config)
    # Then there is no curve and no estimator row, only the truth; the propensity gate says why
    assert clicks.curve is None and clicks.version is None and "exploration pages" in clicks.error
    assert set(clicks.replay.rows["label_source"]) == {"oracle_clicks"}
    assert (clicks.replay.rows["delta"] == 0).all()  # production against itself
    gate = clicks.replay.gates[0]
    assert gate.name == "propensity" and not gate.passed and "min_pages=50" in gate.reason
    assert clicks.notes[0].startswith("click estimates not computed: only")
    assert not lake.exists("gold.click_propensities")  # a failed fit writes no row
    # The window: 28 days ending at the replay's last day, and at least the replay's own days
    assert propensity_window("2026-11-01", "2026-11-01", 28) == ("2026-10-05", "2026-11-01")
    assert propensity_window("2026-09-01", "2026-11-01", 28) == ("2026-09-01", "2026-11-01")


def test_the_click_plot_draws_the_curve_or_says_why_not(tmp_path) -> None:
    from PIL import Image

    from smar.replay.click_report import CurveContext, plot_click_propensities

    curve = CurveContext(
        version="prop-x", ds_start="d", ds_end="d", method="power_law", exploration_pages=60, decided_pages=1200,
        exponent=0.8, exponent_ci=(0.7, 0.9), gof_p_value=0.5, confidence_level=0.95,
        examination=(1.0, 0.57, 0.42), ci_low=(1.0, 0.5, 0.35), ci_high=(1.0, 0.65, 0.5),
        impressions=(60.0, 60.0, 60.0), clicks=(20.0, 12.0, 8.0),
    )  # fmt: skip
    assert "eta 0.800 [0.700, 0.900]" in curve.summary() and "60 randomised pages of 1200" in curve.summary()
    for name, context in (("curve.png", curve), ("none.png", None)):
        path = plot_click_propensities(context, tmp_path / name, synthetic=True, reason="only 3 exploration pages")
        with Image.open(path) as image:
            assert image.format == "PNG"

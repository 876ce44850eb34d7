"""What the click estimates read from the tables: the window's randomised traffic, the logging
propensities and click-model rows of the direct method, and the simulator's truth.

Heavy work stays in Spark: exploration pages are identified there (`exploration_pages`, the
Spark form of `smar.propensities.identify_exploration_pages`, tested against it), and only
the exploration rows (about 5% of the window), per-pair production positions of the scope's
queries, and a bounded sample of click-model rows are collected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from smar.errors import InputRefused
from smar.lake import Lakehouse
from smar.propensities import EXPLORATION_FLAG, ExaminationCurve, PositionCounts, position_counts
from smar.replay.click_model import (
    FEATURE_NAMES,
    attractiveness_features,
    fit_attractiveness_model,
)
from smar.replay.estimators import mixture_logging_propensity
from smar.replay.oracle_clicks import attach_true_attractiveness
from smar.splits import query_split_column

log = logging.getLogger(__name__)

#: An increase of production_score down a modality's slots larger than this is an inversion.
SCORE_TOLERANCE = 1e-9
#: At most this many impressions train the direct method's click model (a hash sample of pages).
MAX_CLICK_MODEL_ROWS = 200_000


def window_logs(lake: Lakehouse, ds_start: str, ds_end: str) -> DataFrame:
    """bronze.search_logs of days ds_start..ds_end, every split: the randomised traffic pooled for the curve."""
    return lake.read("bronze.search_logs").where(F.col("ds").between(F.lit(ds_start), F.lit(ds_end)))


def exploration_pages(logs: DataFrame) -> DataFrame:
    """(ds, request_id, is_exploration, undecided): one row per page of `logs`.

    A page is randomised iff some modality has an inversion: a later slot of the modality with a
    higher production_score than the slot before it (production fills each modality's slots in
    that order). A page with a null production_score cannot be decided (`undecided`, never used).
    """
    slots = Window.partitionBy("ds", "request_id", "modality").orderBy("position")
    previous = F.lag("production_score").over(slots)
    flagged = logs.select(
        "ds",
        "request_id",
        (F.col("production_score") > previous + F.lit(SCORE_TOLERANCE)).cast("int").alias("inversion"),
        F.col("production_score").isNull().cast("int").alias("unscored"),
    )
    pages = flagged.groupBy("ds", "request_id").agg(
        F.max(F.coalesce("inversion", F.lit(0))).alias("inverted"), F.max("unscored").alias("unscored")
    )
    return pages.select(
        "ds",
        "request_id",
        ((F.col("inverted") == 1) & (F.col("unscored") == 0)).alias(EXPLORATION_FLAG),
        (F.col("unscored") == 1).alias("undecided"),
    )


@dataclass(frozen=True)
class WindowTraffic:
    """The window's randomised traffic, counted: what the curve is fitted on."""

    counts: PositionCounts
    exploration_pages: int
    decided_pages: int  # pages classified as production or exploration
    ds_start: str  # the first and last day present in the window
    ds_end: str

    @property
    def exploration_rate(self) -> float:
        return self.exploration_pages / self.decided_pages if self.decided_pages else float("nan")


def window_traffic(lake: Lakehouse, ds_start: str, ds_end: str) -> WindowTraffic:
    """Identify the window's exploration pages in Spark and collect only their (position, clicked) rows."""
    logs = window_logs(lake, ds_start, ds_end)
    pages = exploration_pages(logs)
    totals = pages.agg(
        F.sum(F.col(EXPLORATION_FLAG).cast("int")).alias("exploration"),
        F.sum((~F.col("undecided")).cast("int")).alias("decided"),
        F.min("ds").alias("first"),
        F.max("ds").alias("last"),
    ).collect()[0]
    if not totals["decided"]:
        raise InputRefused(f"no pages with a production_score in bronze.search_logs between {ds_start} and {ds_end}")
    rows = (
        logs.join(pages.where(F.col(EXPLORATION_FLAG)).select("ds", "request_id"), on=["ds", "request_id"])
        .select("ds", "request_id", "position", "clicked")
        .toPandas()
    )
    return WindowTraffic(
        position_counts(rows), int(totals["exploration"] or 0), int(totals["decided"]), totals["first"], totals["last"]
    )


def production_positions(lake: Lakehouse, ds_start: str, ds_end: str, query_ids: list[str]) -> pd.DataFrame:
    """(query_id, item_id, production_position) of `query_ids` from the window's production pages.

    A pair seen at two production positions means the production order changed inside the window:
    the mixture logging propensity is then unknown, so it is refused (shorten the window, or log
    propensities).
    """
    logs = window_logs(lake, ds_start, ds_end).where(F.col("query_id").isin(query_ids))
    production = exploration_pages(logs).where(~F.col(EXPLORATION_FLAG) & ~F.col("undecided"))
    positions: pd.DataFrame = (
        logs.join(production.select("ds", "request_id"), on=["ds", "request_id"])
        .groupBy("query_id", "item_id")
        .agg(F.min("position").alias("production_position"), F.max("position").alias("latest_position"))
        .toPandas()
    )
    moved = positions[positions["production_position"] != positions["latest_position"]]
    if len(moved):
        first = moved.iloc[0]
        raise InputRefused(
            f"{len(moved)} (query, item) pairs sit at different production positions inside the window, e.g. "
            f"({first['query_id']}, {first['item_id']}) at {first['production_position']} and "
            f"{first['latest_position']}: the production order changed, so the logging propensity is not known"
        )
    return positions[["query_id", "item_id", "production_position"]]


def _users_and_items(lake: Lakehouse, days: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    users = lake.read_arrow("bronze.users", filters=[("ds", "in", days)]).select(["ds", "user_id", "dense_features"])
    items = lake.read_arrow("bronze.items", filters=[("ds", "in", days)])
    return users.to_pandas(), items.select(["ds", "item_id", "impression_count", "click_count"]).to_pandas()


def click_model_rows(lake: Lakehouse, ds_start: str, ds_end: str) -> pd.DataFrame:
    """Impressions of the replayed days outside the `test` split (the click model never sees the
    scope's queries), a hash sample of pages bounded by `MAX_CLICK_MODEL_ROWS`."""
    outside = lake.read("bronze.search_logs").where(
        F.col("ds").between(F.lit(ds_start), F.lit(ds_end)) & (query_split_column(F.col("query_id")) != F.lit("test"))
    )
    total = outside.count()
    if total > MAX_CLICK_MODEL_ROWS:
        share = int(10_000 * MAX_CLICK_MODEL_ROWS / total)
        outside = outside.where(F.abs(F.xxhash64("ds", "request_id")) % 10_000 < share)
    columns = ["ds", "request_id", "user_id", "item_id", "modality", "position", "production_score", "clicked"]
    rows: pd.DataFrame = outside.select(*columns).toPandas()
    # A fixed order: the fit's floating-point sums, and so the model, must not depend on how the engine collects.
    return rows.sort_values(["ds", "request_id", "position"], kind="stable", ignore_index=True)


@dataclass(frozen=True)
class DoublyRobustInputs:
    """Per scope impression: the click model's predicted attractiveness and the logging propensity."""

    predicted_attractiveness: NDArray[np.float64]
    logging_propensity: NDArray[np.float64]
    model_rows: int
    converged: bool


def doubly_robust_inputs(
    lake: Lakehouse, impressions: pd.DataFrame, curve: ExaminationCurve, traffic: WindowTraffic, *,
    ds_start: str, ds_end: str,
) -> DoublyRobustInputs:  # fmt: skip
    """Fit the direct method outside the scope and compute pi_b of every scope impression."""
    training = click_model_rows(lake, ds_start, ds_end)
    days = sorted(set(training["ds"]) | set(impressions["ds"]))
    users, items = _users_and_items(lake, days)
    model = fit_attractiveness_model(
        attractiveness_features(training, users, items), training["clicked"].to_numpy(np.float64),
        curve.examination[training["position"].to_numpy(np.int64) - 1], feature_names=FEATURE_NAMES,
    )  # fmt: skip
    predicted = model.predict(attractiveness_features(impressions, users, items))
    positions = production_positions(lake, traffic.ds_start, traffic.ds_end, sorted(impressions["query_id"].unique()))
    merged = impressions[["query_id", "item_id"]].merge(positions, on=["query_id", "item_id"], how="left")
    page_length = impressions.groupby(["ds", "request_id"])["item_id"].transform("size").to_numpy()
    propensity = mixture_logging_propensity(
        merged["production_position"].to_numpy(np.float64), impressions["position"].to_numpy(np.float64),
        exploration_rate=traffic.exploration_rate, page_length=page_length,
    )  # fmt: skip
    return DoublyRobustInputs(predicted, propensity, model.n_rows, model.converged)


def true_attractiveness(lake: Lakehouse, impressions: pd.DataFrame) -> NDArray[np.float64] | None:
    """The generator's attractiveness of every scope impression (truth.relevance and bronze.users);
    None on real data, or when the truth does not cover the scope (the reason is logged)."""
    if not (lake.exists("truth.relevance") and lake.exists("bronze.users")):
        return None
    days = sorted(impressions["ds"].unique().tolist())
    relevance = lake.read_arrow("truth.relevance", filters=[("ds", "in", days)])
    users = lake.read_arrow("bronze.users", filters=[("ds", "in", days)])
    try:
        attached = attach_true_attractiveness(
            impressions,
            relevance.select(["ds", "query_id", "item_id", "grade"]).to_pandas(),
            users.select(["ds", "user_id", "dense_features"]).to_pandas(),
        )
    except InputRefused as error:
        log.warning("oracle clicks skipped: %s", error)
        return None
    return attached["true_attractiveness"].to_numpy(np.float64)

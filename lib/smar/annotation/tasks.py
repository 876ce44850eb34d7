"""Spark transforms of step 2: scored candidates -> candidate pages -> annotation task rows.

A *page* is one logged search result page of a query on day `ds`: the first request of the query
that day (smallest `request_id`), so the choice is stable across strategies and rounds and
`page_id` is that `request_id` (it joins silver.single_modal_scores and bronze.search_logs).

Per page and modality, the items are ranked by `rank_in_modality` (ties by item_id); position
p (0-based) in that order is what `smar.annotation.strategies` and `IsoLabelSearch` work on, and
the task records the item's `single_modal_rank` (= rank_in_modality) too.

Randomness is recorded and reproducible: every page draws from a numpy generator seeded with
(seed, sha256(page_id), round, purpose), purpose 0 for the `random` strategy's draw and 1 for the
display order. The order actually shown is stored as `display_position` 1..n in `items`.

The heavy part runs per page in `applyInPandas` (pure pandas functions below, tested directly);
the rest is native Spark.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from smar.annotation.iso_label import DEFAULT_BOUNDARIES, IsoLabelSearch
from smar.annotation.strategies import interleave_for_display, select_positions
from smar.splits import query_split_column
from smar.vocabulary import BUDGET_STRATEGIES, FULL, ISO_LABEL, ISO_LABEL_BUDGET, TASK_STRATEGIES

# iso_label has no fraction budget (ISO_LABEL_BUDGET): its cost is bounded by the judgement cap instead.
SELECT_PURPOSE, DISPLAY_PURPOSE = 0, 1

SHOWN_ITEM_SCHEMA = T.StructType(
    [
        T.StructField("page_id", T.StringType()),
        T.StructField("item_id", T.StringType()),
        T.StructField("modality", T.StringType()),
        T.StructField("title", T.StringType()),
        T.StructField("body", T.StringType()),
        T.StructField("single_modal_rank", T.IntegerType()),
        T.StructField("display_position", T.IntegerType()),
    ]
)
SHOWN_ITEM_COLUMNS = [field.name for field in SHOWN_ITEM_SCHEMA.fields]

# One applyInPandas output for the iso-label round: `kind` says which fields are filled.
#   probe:  an item to judge this round (the SHOWN_ITEM columns)
#   anchor: one side of a resolved boundary (grade_boundary .. inconsistencies)
#   page:   the page's search state (search_done, judgements_used, inconsistencies)
ISO_ROUND_SCHEMA = T.StructType(
    [
        T.StructField("kind", T.StringType()),
        *SHOWN_ITEM_SCHEMA.fields,
        T.StructField("grade_boundary", T.IntegerType()),
        T.StructField("side", T.StringType()),
        T.StructField("judged_grade", T.IntegerType()),
        T.StructField("boundary_position", T.IntegerType()),
        T.StructField("judgements_used", T.IntegerType()),
        T.StructField("inconsistencies", T.IntegerType()),
        T.StructField("search_done", T.BooleanType()),
    ]
)
ISO_ROUND_COLUMNS = [field.name for field in ISO_ROUND_SCHEMA.fields]


def page_rng(seed: int, page_id: str, round_number: int, purpose: int) -> np.random.Generator:
    """The page's recorded random stream: seeded by (seed, sha256(page_id), round, purpose)."""
    page_hash = int(hashlib.sha256(page_id.encode("utf-8")).hexdigest()[:16], 16)
    return np.random.default_rng(np.random.SeedSequence([seed, page_hash, round_number, purpose]))


def task_id_suffix(strategy: str, budget: float, round_number: int) -> str:
    """What follows the page id in a task id: `/<strategy>/b<budget>/r<round>`."""
    return f"/{strategy}/b{budget:g}/r{round_number}"


def check_strategy(strategy: str, budget: float) -> None:
    """Refuse unknown strategies and budgets outside (0, 1] (iso_label and full take any)."""
    if strategy not in TASK_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {TASK_STRATEGIES}")
    if strategy in BUDGET_STRATEGIES and (math.isnan(budget) or not 0.0 < budget <= 1.0):
        raise ValueError(f"budget must be a fraction in (0, 1], got {budget}")


# -- candidate pages ----------------------------------------------------------------------------
def candidate_pages(
    scores: DataFrame,
    search_logs: DataFrame,
    items: DataFrame,
    *,
    ds: str,
    splits: Sequence[str],
) -> DataFrame:
    """One logged page per query of `splits` on `ds`, with every scored candidate of that page.

    Columns: ds, page_id, query_id, query_text, item_id, modality, rank_in_modality, title, body,
    n_candidates. `page_id` is the query's smallest request_id of the day.
    """
    day_scores = scores.where(F.col("ds") == ds).where(query_split_column(F.col("query_id")).isin(list(splits)))
    first_requests = day_scores.groupBy("query_id").agg(F.min("request_id").alias("request_id"))
    query_texts = search_logs.where(F.col("ds") == ds).select("request_id", "query_text").dropDuplicates(["request_id"])
    display_fields = items.where(F.col("ds") == ds).select("item_id", "title", "body").dropDuplicates(["item_id"])
    # Explicit frame: every candidate of the page counts, whatever the order.
    page_window = F.count(F.lit(1)).over(
        Window.partitionBy("request_id").rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    )
    return (
        day_scores.join(first_requests, on=["query_id", "request_id"], how="inner")
        .join(query_texts, on="request_id", how="inner")
        .join(display_fields, on="item_id", how="left")
        .select(
            F.col("ds"),
            F.col("request_id").alias("page_id"),
            F.col("query_id"),
            F.col("query_text"),
            F.col("item_id"),
            F.col("modality"),
            F.col("rank_in_modality").cast("int").alias("rank_in_modality"),
            F.col("title"),
            F.col("body"),
            page_window.cast("int").alias("n_candidates"),
        )
    )


# -- per-page pure functions (run inside applyInPandas, tested directly) -------------------------
def _ranked_by_modality(page: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The page's candidates per modality, in single-modal rank order (ties by item_id)."""
    ordered = page.sort_values(["modality", "rank_in_modality", "item_id"], kind="stable")
    return {str(modality): group.reset_index(drop=True) for modality, group in ordered.groupby("modality", sort=True)}


def _shown_rows(
    page_id: str,
    chosen: dict[str, pd.DataFrame],
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Interleave the chosen items of every modality into the recorded display order."""
    by_item = {str(row["item_id"]): row for frame in chosen.values() for row in frame.to_dict("records")}
    order = interleave_for_display(
        {modality: [str(item) for item in frame["item_id"]] for modality, frame in chosen.items()},
        rng,
    )
    rows = []
    for display_position, (modality, item_id) in enumerate(order, start=1):
        row = by_item[item_id]
        rows.append(
            {
                "page_id": page_id,
                "item_id": item_id,
                "modality": modality,
                "title": None if pd.isna(row.get("title")) else str(row["title"]),
                "body": None if pd.isna(row.get("body")) else str(row["body"]),
                "single_modal_rank": int(row["rank_in_modality"]),
                "display_position": display_position,
            }
        )
    return rows


def select_page_items(
    page: pd.DataFrame,
    *,
    strategy: str,
    budget: float,
    seed: int,
    round_number: int,
    band_index: int = 1,
) -> pd.DataFrame:
    """The items of one page to show under `strategy`, in display order (SHOWN_ITEM_COLUMNS).

    `page` holds one page's candidates (page_id, item_id, modality, rank_in_modality, title,
    body). `full` shows every candidate; the budget strategies apply `select_positions` per
    modality (modalities in name order, so the `random` draw is reproducible).
    """
    if page.empty:
        return pd.DataFrame(columns=SHOWN_ITEM_COLUMNS)
    page_id = str(page["page_id"].iloc[0])
    ranked = _ranked_by_modality(page)
    select_rng = page_rng(seed, page_id, round_number, SELECT_PURPOSE)
    chosen: dict[str, pd.DataFrame] = {}
    for modality, frame in ranked.items():
        if strategy == FULL:
            positions = np.arange(len(frame))
        else:
            positions = select_positions(strategy, len(frame), budget, rng=select_rng, band_index=band_index)
        chosen[modality] = frame.iloc[positions]
    rows = _shown_rows(page_id, chosen, page_rng(seed, page_id, round_number, DISPLAY_PURPOSE))
    return pd.DataFrame(rows, columns=SHOWN_ITEM_COLUMNS)


def _consensus(value: Any) -> int | None:
    """Mean grade of the annotators -> one grade, rounded half up; None when unlabelled."""
    if value is None or pd.isna(value):
        return None
    return int(math.floor(float(value) + 0.5))


def iso_label_page_round(
    page: pd.DataFrame,
    *,
    round_number: int,
    seed: int,
    grades: Sequence[int] = DEFAULT_BOUNDARIES,
    max_judgements_per_query: int | None = None,
) -> pd.DataFrame:
    """One page's iso-label state after the labels of rounds < `round_number`, and its probes.

    `page` holds the page's candidates plus `label_round` (the earliest iso-label round that showed
    the item, null if never) and `mean_grade` (annotators' mean, null if unlabelled). The search
    is replayed round by round (`next_probes`, then `record` that round's labelled items, in
    modality and rank order), so its state is a pure function of the stored labels. Returns rows
    in ISO_ROUND_COLUMNS: `probe` rows (this round's items, in display order), `anchor` rows (both
    sides of every resolved boundary) and one `page` row.
    """
    if page.empty:
        return pd.DataFrame(columns=ISO_ROUND_COLUMNS)
    page_id = str(page["page_id"].iloc[0])
    ranked = _ranked_by_modality(page)
    search = IsoLabelSearch(
        {modality: len(frame) for modality, frame in ranked.items()},
        grades=tuple(grades),
        max_judgements_per_query=max_judgements_per_query,
    )
    labelled: dict[int, list[tuple[str, int, int]]] = {}
    for modality, frame in ranked.items():
        for position, row in enumerate(frame.to_dict("records")):
            label_round, grade = row.get("label_round"), _consensus(row.get("mean_grade"))
            if label_round is None or pd.isna(label_round) or grade is None:
                continue
            if int(label_round) < round_number:
                labelled.setdefault(int(label_round), []).append((modality, position, grade))
    for label_round in sorted(labelled):
        search.next_probes()  # marks which boundaries this round's midpoints belong to
        judged = search.judged()
        for modality, position, grade in sorted(labelled[label_round]):
            cap_spent = max_judgements_per_query is not None and search.judgements_used >= max_judgements_per_query
            if cap_spent:
                break
            if position not in judged[modality]:
                search.record(modality, position, grade)

    rows: list[dict[str, Any]] = []
    probes = {} if search.is_done() else search.next_probes()
    if probes:
        chosen = {modality: ranked[modality].iloc[positions] for modality, positions in probes.items()}
        display_rng = page_rng(seed, page_id, round_number, DISPLAY_PURPOSE)
        rows += [{"kind": "probe", **row} for row in _shown_rows(page_id, chosen, display_rng)]

    judged_by_modality = search.judgements_by_modality()
    for boundary_grade, anchors in search.anchors().items():
        for anchor in anchors:
            frame = ranked[anchor.modality]
            sides: tuple[tuple[str, int | None, int | None], ...] = (
                ("above", anchor.last_at_or_above, anchor.last_at_or_above_grade),
                ("below", anchor.first_below, anchor.first_below_grade),
            )
            for side, anchor_position, judged_grade in sides:
                item = frame.iloc[anchor_position] if anchor_position is not None else None
                rows.append(
                    {
                        "kind": "anchor",
                        "page_id": page_id,
                        "item_id": None if item is None else str(item["item_id"]),
                        "modality": anchor.modality,
                        "single_modal_rank": None if item is None else int(item["rank_in_modality"]),
                        "grade_boundary": boundary_grade,
                        "side": side,
                        "judged_grade": judged_grade,
                        "boundary_position": anchor.boundary,
                        "judgements_used": judged_by_modality[anchor.modality],
                        "inconsistencies": search.inconsistencies,
                    }
                )
    rows.append(
        {
            "kind": "page",
            "page_id": page_id,
            "judgements_used": search.judgements_used,
            "inconsistencies": search.inconsistencies,
            "search_done": not probes,
        }
    )
    # Object columns keep None as null next to ints and bools (no NaN floats) on the way to Arrow.
    return pd.DataFrame(
        [[row.get(column) for column in ISO_ROUND_COLUMNS] for row in rows],
        columns=ISO_ROUND_COLUMNS,
        dtype=object,
    )


# -- assembling task rows ------------------------------------------------------------------------
def _items_array(shown: DataFrame) -> DataFrame:
    """Shown item rows -> one row per page with `items` in display order (the contract's struct)."""
    collected = shown.groupBy("page_id").agg(
        F.sort_array(
            F.collect_list(F.struct("display_position", "item_id", "modality", "title", "body", "single_modal_rank"))
        ).alias("shown")
    )
    return collected.select(
        F.col("page_id"),
        F.transform(
            "shown",
            lambda item: F.struct(
                item["item_id"].alias("item_id"),
                item["modality"].alias("modality"),
                item["title"].alias("title"),
                item["body"].alias("body"),
                item["single_modal_rank"].alias("single_modal_rank"),
                item["display_position"].alias("display_position"),
            ),
        ).alias("items"),
    )


def _created_at(created_at: datetime | None) -> Column:
    return F.current_timestamp() if created_at is None else F.lit(created_at).cast("timestamp")


def assemble_tasks(
    candidates: DataFrame,
    shown: DataFrame,
    *,
    strategy: str,
    budget: float,
    round_number: int,
    created_at: datetime | None = None,
) -> DataFrame:
    """Task rows (exactly silver.annotation_tasks' columns) from the pages and their shown items.

    task_id = page_id + `/<strategy>/b<budget>/r<round>`; pages without a shown item get no task.
    """
    pages = candidates.select("ds", "page_id", "query_id", "query_text", "n_candidates").dropDuplicates(["page_id"])
    suffix = task_id_suffix(strategy, budget, round_number)
    return pages.join(_items_array(shown), on="page_id", how="inner").select(
        F.col("ds"),
        F.concat(F.col("page_id"), F.lit(suffix)).alias("task_id"),
        F.col("page_id"),
        F.col("query_id"),
        F.col("query_text"),
        F.col("items"),
        F.lit(strategy).alias("strategy"),
        F.lit(round_number).cast("int").alias("round"),
        F.lit(float(budget)).cast("double").alias("budget"),
        F.col("n_candidates").cast("int").alias("n_candidates"),
        _created_at(created_at).alias("created_at"),
        F.lit("open").alias("status"),
    )


def build_tasks_frame(
    candidates: DataFrame,
    *,
    strategy: str,
    budget: float,
    seed: int,
    round_number: int = 0,
    band_index: int = 1,
    created_at: datetime | None = None,
) -> DataFrame:
    """silver.annotation_tasks rows for `candidates` (from `candidate_pages`) under a budget
    strategy (top, slice, random, stratified) or `full`."""
    if strategy == ISO_LABEL:
        raise ValueError("iso_label tasks come from `iso_label_round_frames`, one round at a time")
    check_strategy(strategy, budget)

    def per_page(page: pd.DataFrame) -> pd.DataFrame:
        return select_page_items(
            page,
            strategy=strategy,
            budget=budget,
            seed=seed,
            round_number=round_number,
            band_index=band_index,
        )

    shown = (
        candidates.select("page_id", "item_id", "modality", "rank_in_modality", "title", "body")
        .groupBy("page_id")
        .applyInPandas(per_page, SHOWN_ITEM_SCHEMA)
    )
    return assemble_tasks(
        candidates,
        shown,
        strategy=strategy,
        budget=budget,
        round_number=round_number,
        created_at=created_at,
    )


def iso_label_history(tasks: DataFrame, consensus: DataFrame, *, round_number: int) -> DataFrame:
    """(page_id, item_id, label_round, mean_grade) for items shown by iso-label rounds before
    `round_number`: the earliest round that showed the item, and its annotators' mean grade."""
    shown = (
        tasks.where((F.col("strategy") == ISO_LABEL) & (F.col("round") < round_number))
        .select("page_id", "round", F.explode("items").alias("item"))
        .groupBy("page_id", F.col("item.item_id").alias("item_id"))
        .agg(F.min("round").alias("label_round"))
    )
    return shown.join(consensus.select("page_id", "item_id", "mean_grade"), on=["page_id", "item_id"], how="left")


def iso_label_round_frames(
    candidates: DataFrame,
    history: DataFrame,
    *,
    round_number: int,
    seed: int,
    grades: Sequence[int] = DEFAULT_BOUNDARIES,
    max_judgements_per_query: int | None = None,
    created_at: datetime | None = None,
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(tasks, anchors, page states) of one iso-label round.

    tasks: silver.annotation_tasks rows of round `round_number` (pages still searching);
    anchors: silver.iso_label_anchors rows after the labels of the earlier rounds;
    page states: page_id, search_done, judgements_used, inconsistencies.
    """

    def per_page(page: pd.DataFrame) -> pd.DataFrame:
        return iso_label_page_round(
            page,
            round_number=round_number,
            seed=seed,
            grades=grades,
            max_judgements_per_query=max_judgements_per_query,
        )

    joined = candidates.select("page_id", "item_id", "modality", "rank_in_modality", "title", "body").join(
        history, on=["page_id", "item_id"], how="left"
    )
    state = joined.groupBy("page_id").applyInPandas(per_page, ISO_ROUND_SCHEMA)
    tasks = assemble_tasks(
        candidates,
        state.where(F.col("kind") == "probe").select(*SHOWN_ITEM_COLUMNS),
        strategy=ISO_LABEL,
        budget=ISO_LABEL_BUDGET,
        round_number=round_number,
        created_at=created_at,
    )
    pages = candidates.select("ds", "page_id", "query_id").dropDuplicates(["page_id"])
    anchors = (
        state.where(F.col("kind") == "anchor")
        .join(pages, on="page_id", how="inner")
        .select(
            F.col("ds"),
            F.col("page_id"),
            F.col("query_id"),
            F.col("grade_boundary"),
            F.col("modality"),
            F.col("side"),
            F.col("item_id"),
            F.col("single_modal_rank").alias("rank_in_modality"),
            F.col("judged_grade"),
            F.col("boundary_position"),
            F.col("judgements_used"),
            F.lit(round_number - 1).cast("int").alias("round"),
            F.col("inconsistencies"),
        )
    )
    page_states = state.where(F.col("kind") == "page").select(
        "page_id", "search_done", "judgements_used", "inconsistencies"
    )
    return tasks, anchors, page_states

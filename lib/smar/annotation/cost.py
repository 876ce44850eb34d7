"""The annotation cost of a day: per strategy and budget, the items sent for a page grade
against grading every candidate of the same pages (the counterfactual of full annotation).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


@dataclass(frozen=True)
class AnnotationCostRow:
    """One row of gold.annotation_cost (see its contract)."""

    ds: str
    strategy: str
    budget: float
    n_queries: int
    n_rounds: int
    items_labelled: int
    judgements_per_query: float
    full_annotation_items: int
    full_judgements_per_query: float
    fraction_of_full: float
    labels_received: int
    items_with_labels: int
    labels_per_item: float | None


def annotation_cost_rows(tasks: DataFrame, consensus: DataFrame, *, ds: str) -> list[AnnotationCostRow]:
    """Per strategy and budget of the day's `tasks`: queries, rounds, items sent for a page grade,
    judgements per query, and fraction_of_full = items_labelled / full_annotation_items, with the
    labels received so far (`consensus`: one row per (page, item) with n_annotators)."""
    group = ["strategy", "budget"]
    shown = tasks.select(*group, "round", "page_id", "query_id", F.explode("items").alias("item")).select(
        *group, "round", "page_id", "query_id", F.col("item.item_id").alias("item_id")
    )
    pairs = shown.select(*group, "page_id", "item_id").dropDuplicates()
    label_counts = consensus.select("page_id", "item_id", "n_annotators")
    labelled = (
        pairs.join(label_counts, on=["page_id", "item_id"], how="left")
        .groupBy(*group)
        .agg(
            F.count(F.lit(1)).alias("items_labelled"),
            F.coalesce(F.sum("n_annotators"), F.lit(0)).alias("labels_received"),
            F.count("n_annotators").alias("items_with_labels"),
        )
    )
    pages = (
        tasks.select(*group, "page_id", "n_candidates")
        .dropDuplicates([*group, "page_id"])
        .groupBy(*group)
        .agg(F.coalesce(F.sum("n_candidates"), F.lit(0)).alias("full_annotation_items"))
    )
    queries = shown.groupBy(*group).agg(
        F.countDistinct("query_id").alias("n_queries"), F.countDistinct("round").alias("n_rounds")
    )
    collected = (
        queries.join(labelled, on=group, how="inner")
        .join(pages, on=group, how="inner")
        .orderBy("strategy", "budget")
        .collect()
    )
    rows = []
    for row in collected:
        n_queries, items, full = int(row["n_queries"]), int(row["items_labelled"]), int(row["full_annotation_items"])
        with_labels = int(row["items_with_labels"])
        rows.append(
            AnnotationCostRow(
                ds=ds, strategy=row["strategy"], budget=float(row["budget"]), n_queries=n_queries,
                n_rounds=int(row["n_rounds"]), items_labelled=items,
                judgements_per_query=items / n_queries if n_queries else 0.0,
                full_annotation_items=full,
                full_judgements_per_query=full / n_queries if n_queries else 0.0,
                fraction_of_full=items / full if full else 0.0,
                labels_received=int(row["labels_received"]), items_with_labels=with_labels,
                labels_per_item=int(row["labels_received"]) / with_labels if with_labels else None,
            )
        )  # fmt: skip
    return rows

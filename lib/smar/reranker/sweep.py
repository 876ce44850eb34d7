"""`budget-sweep`: NDCG@10 against the annotation budget, across seeds, for SMAR and baselines.

For each seed, each budget p in (0.1, 0.2, 0.3, 1.0) and each method:

* smar_pairwise, smar_listwise, lightgbm: trained on the page labels a budget-p annotation
  would give (per page and modality, `select_positions(strategy, n, p)` of the single-modal
  ranked list), early-stopped on page_valid queries labelled at the same budget;
* page_loss_only: the same without the intra-modal term (budgets below 1);
* sft: page loss only, 100% of the labels (one point, drawn as a reference line);
* fusions: no page label at all (drawn as reference lines).

Labels: the budgets are emulated from one full annotation of the page_train, page_valid and test
queries. On synthetic data, `simulate_labels=True` writes that annotation into
`silver.page_labels` from `truth.relevance` (annotator "simulated-oracle", noise-free: an
annotator who grades exactly the hidden truth), so "page_labels" and "oracle" test metrics agree
unless real or noisy labels are used.

With `label_noise` / `label_disagreement` > 0 the full annotation comes from the simulated
annotator team instead (`smar.annotation.simulate`, the model of `smar simulate-annotators`: two
annotators, the reranker reads their mean grade); the "oracle" metrics still use the hidden truth.

Metric: NDCG@10 on test queries (one page per query, linear gain, trec_eval ties), against the
hidden truth ("oracle") and against the test page labels ("page_labels"). Seeds vary the
model's initialisation, dropout and page order (and the draw of the "random" strategy). The
intervals resample the test queries and the seeds together, paired across methods
(`smar.reranker.sweep_stats`, `smar.reranker.sweep_report`). The merge ceiling
(`smar.reranker.ceiling`: the best page that keeps every single-modal order) is reported next to
the methods.

Output: `gold.budget_sweep` (one slice per sweep_id), one `gold.reranker_runs` row per run, and
under `<settings.reports>/sweep/`: `<sweep_id>.png` (the plot), `<sweep_id>_summary.csv`,
`<sweep_id>_comparisons.json`, `<sweep_id>_per_query.csv` (every run's NDCG@10 per test query)
and `<sweep_id>_rows.csv` (written in a local folder, then published to the URI). The reports are
written before the tables, so a failing table write cannot lose a sweep's results.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, model_validator
from pyspark.sql import SparkSession
from tqdm.auto import tqdm

from smar.annotation.simulate import simulate_grades
from smar.config import FrozenConfig
from smar.lake import Lakehouse
from smar.reranker.baselines import LightGBMConfig
from smar.reranker.ceiling import ceiling_ndcg_per_page
from smar.reranker.gbdt_smar import GbdtSmarConfig
from smar.reranker.inputs import pin_versions, read_pinned
from smar.reranker.registry import register_runs
from smar.reranker.runs import PAGE_STORE_SPLITS, PreparedPages, fit_and_evaluate, prepare_pages
from smar.reranker.sweep_report import (
    aggregate_sweep,
    headline_comparisons,
    per_query_frame,
    per_query_matrices,
    plot_sweep,
)
from smar.reranker.sweep_stats import BootstrapDraws
from smar.reranker.text_cache import DEFAULT_ENCODER_NAME, TextEncodeFunction
from smar.reranker.training import TrainingConfig, ndcg_per_page
from smar.splits import query_split
from smar.storage import files
from smar.storage.uris import join
from smar.vocabulary import FUSION_METHODS, RERANKER_METHODS, SWEEP_LABEL_SOURCES, content_id, day_range

log = logging.getLogger(__name__)

SWEEP_TABLE = "gold.budget_sweep"
DEFAULT_BUDGETS: tuple[float, ...] = (0.1, 0.2, 0.3, 1.0)
SIMULATED_ANNOTATOR = "simulated-oracle"
LABEL_SOURCES = SWEEP_LABEL_SOURCES


class SweepConfig(FrozenConfig):
    """What to sweep. `training` / `lightgbm` are the base hyper-parameters (seed overridden)."""

    ds_start: str
    ds_end: str
    seeds: tuple[int, ...] = (0, 1, 2)
    budgets: tuple[float, ...] = DEFAULT_BUDGETS
    methods: tuple[str, ...] = RERANKER_METHODS
    strategy: str = "top"
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    lightgbm: LightGBMConfig = Field(default_factory=LightGBMConfig)
    gbdt_smar: GbdtSmarConfig = Field(default_factory=GbdtSmarConfig)
    simulate_labels: bool = True
    annotator: str = SIMULATED_ANNOTATOR
    #: with simulate_labels: the simulated team's noise and disagreement (0, 0: the noise-free
    #: oracle annotator) and the seed of their draws
    label_noise: float = Field(default=0.0, ge=0.0, le=1.0)
    label_disagreement: float = Field(default=0.0, ge=0.0, le=1.0)
    label_seed: int = 0
    sweep_id: str | None = None
    progress: bool = True
    encoder_name: str = DEFAULT_ENCODER_NAME
    bootstrap_replicates: int = Field(default=2000, ge=100)

    @model_validator(mode="after")
    def _check(self) -> SweepConfig:
        unknown = set(self.methods) - set(RERANKER_METHODS)
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}; expected some of {RERANKER_METHODS}")
        if not self.seeds or not self.budgets:
            raise ValueError("a sweep needs at least one seed and one budget")
        if any(not 0.0 < budget <= 1.0 for budget in self.budgets):
            raise ValueError(f"budgets must lie in (0, 1], got {self.budgets}")
        return self

    def definition(self) -> dict[str, Any]:
        """Everything that defines the sweep's results (for its id)."""
        values = self.model_dump()
        for name in ("progress", "sweep_id", "bootstrap_replicates"):
            values.pop(name)
        return values

    @property
    def noisy_labels(self) -> bool:
        return self.simulate_labels and (self.label_noise > 0 or self.label_disagreement > 0)

    def label_annotators(self) -> tuple[str, ...] | None:
        """The annotators whose labels the sweep reads (None: every one, `simulate_labels=False`)."""
        if not self.simulate_labels:
            return None
        return simulated_team(self) if self.noisy_labels else (self.annotator,)


def simulated_team(config: SweepConfig) -> tuple[str, ...]:
    """Names of the simulated noisy team of `config`: distinct per noise setting, so sweeps with
    different label settings share one `silver.page_labels` without mixing."""
    tag = f"n{config.label_noise:g}-d{config.label_disagreement:g}-s{config.label_seed}"
    return (f"simulated-team-{tag}-1", f"simulated-team-{tag}-2")


@dataclass
class SweepSummary:
    """The sweep's rows, their aggregate (mean and 95% CI over seeds), the headline comparisons
    and where the plot went."""

    sweep_id: str
    rows: pd.DataFrame
    aggregate: pd.DataFrame
    comparisons: dict[str, Any]
    plot_path: str  # URIs under <reports>/sweep/
    summary_path: str
    input_versions: dict[str, int]


# ------------------------------------------------------------------------- simulated labels


def write_simulated_page_labels(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds_values: list[str],
    query_splits: tuple[str, ...] = PAGE_STORE_SPLITS,
    annotator: str = SIMULATED_ANNOTATOR,
    noise: float = 0.0,
    disagreement: float = 0.0,
    team: tuple[str, ...] | None = None,
    seed: int = 0,
) -> int:
    """Grade every candidate of every query of `query_splits` on ds_values (each query once, on
    its earliest day) and MERGE these labels into `silver.page_labels` (strategy "full").
    Re-running changes nothing. Returns the number of label rows; candidates without a truth
    grade are counted in the log.

    Noise-free (noise = disagreement = 0): one annotator `annotator` who gives the hidden truth
    grade. Otherwise the grades come from `smar.annotation.simulate.simulate_grades` (the noise
    model of `smar simulate-annotators`), one task per page, one row per annotator of `team`
    (default: two annotators named after `annotator`); the reranker reads their mean."""
    # `spark` is the session `lake` writes through (job convention: (spark, lake, *, ...)).
    assert lake.spark is None or lake.spark is spark, "lake must be bound to the given session"
    labels = _full_annotation_truth(lake, ds_values=ds_values, query_splits=query_splits)
    labelled_at = {ds: datetime.fromisoformat(f"{ds}T00:00:00+00:00") for ds in labels["ds"].unique()}
    keys = labels[["ds", "query_id", "item_id", "modality"]].itertuples(index=False)
    noisy = noise > 0 or disagreement > 0
    if noisy:
        names = team or (f"{annotator}-1", f"{annotator}-2")
        tasks = [
            {
                "data": {
                    "task_id": f"simulated/{ds}/{query}",
                    "query_id": query,
                    "items": [{"item_id": item} for item in group["item_id"]],
                }
            }
            for (ds, query), group in labels.groupby(["ds", "query_id"], sort=True)
        ]
        truth = {
            (query, item): int(grade)
            for query, item, grade in labels[["query_id", "item_id", "grade"]].itertuples(False)
        }
        simulated = simulate_grades(
            tasks, truth, n_annotators=len(names), noise=noise, disagreement=disagreement, seed=seed
        )
        graded = [
            (ds, query, item, modality, renamed, simulated.grades[(f"simulated/{ds}/{query}", item, name)])
            for ds, query, item, modality in keys
            for name, renamed in zip(simulated.annotators, names, strict=True)
        ]
        source = f"simulated:noise={noise:g},disagreement={disagreement:g},seed={seed}"
    else:
        grades = labels["grade"].to_numpy()
        graded = [(*key, annotator, int(grade)) for key, grade in zip(keys, grades, strict=True)]
        source = "simulated:truth.relevance"
    rows = [
        {
            "ds": ds,
            "task_id": f"simulated/{ds}/{query}",
            "page_id": f"{ds}/{query}",
            "query_id": query,
            "item_id": item,
            "modality": modality,
            "annotator": name,
            "grade": int(grade),
            "strategy": "full",
            "round": 0,
            "annotated_at": labelled_at[ds],
            "source_file": source,
            "ingested_at": labelled_at[ds],
        }
        for ds, query, item, modality, name, grade in graded
    ]
    if not rows:
        return 0
    lake.merge(rows, "silver.page_labels", update_when_changed=["grade"])
    log.info("simulated %d page labels (%d queries)", len(rows), labels["query_id"].nunique())
    return len(rows)


def _full_annotation_truth(lake: Lakehouse, *, ds_values: list[str], query_splits: tuple[str, ...]) -> pd.DataFrame:
    """(ds, query_id, item_id, modality, grade): every candidate of every query of
    `query_splits` on its earliest day of `ds_values`, with its truth grade (ungraded dropped)."""
    versions = pin_versions(lake, ("silver.single_modal_scores", "truth.relevance"))
    candidates = (
        read_pinned(
            lake,
            "silver.single_modal_scores",
            versions["silver.single_modal_scores"],
            columns=["ds", "query_id", "item_id", "modality"],
            ds_values=ds_values,
        )
        .to_pandas()
        .drop_duplicates(["ds", "query_id", "item_id"])
    )
    keep = {query for query in candidates["query_id"].unique() if query_split(query) in query_splits}
    candidates = candidates[candidates["query_id"].isin(keep)]
    first_day = candidates.groupby("query_id")["ds"].transform("min")
    candidates = candidates[candidates["ds"] == first_day]
    truth = read_pinned(
        lake,
        "truth.relevance",
        versions["truth.relevance"],
        columns=["ds", "query_id", "item_id", "grade"],
        ds_values=ds_values,
    ).to_pandas()
    labels = candidates.merge(truth, on=["ds", "query_id", "item_id"], how="left")
    missing = labels["grade"].isna()
    if missing.any():
        log.warning("%d candidates have no truth grade and stay unlabelled", int(missing.sum()))
    return labels[~missing]


# ------------------------------------------------------------------------------ the sweep


def sweep_plan(config: SweepConfig) -> list[tuple[int, str, float | None]]:
    """(seed, method, budget) of every run: budgeted methods at each budget, page_loss_only below
    1 (at 1 it is SFT), sft at 1, fusions once (budget None)."""
    plan: list[tuple[int, str, float | None]] = []
    for seed in config.seeds:
        for method in config.methods:
            if method in FUSION_METHODS:
                plan.append((seed, method, None))
            elif method == "sft":
                plan.append((seed, method, 1.0))
            else:
                for budget in config.budgets:
                    if method == "page_loss_only" and budget >= 1.0:
                        continue
                    plan.append((seed, method, budget))
    return plan


def run_budget_sweep(
    spark: SparkSession, lake: Lakehouse, config: SweepConfig, *, encode: TextEncodeFunction | None = None
) -> SweepSummary:
    """Run every (seed, method, budget) of `config`; save the reports (plot, summary, per-query
    NDCG@10, comparisons, rows), then write `gold.budget_sweep` (slice sweep_id) and the runs'
    `gold.reranker_runs` rows."""
    days = day_range(config.ds_start, config.ds_end)
    if config.simulate_labels:
        write_simulated_page_labels(
            spark,
            lake,
            ds_values=days,
            annotator=config.annotator,
            noise=config.label_noise,
            disagreement=config.label_disagreement,
            team=simulated_team(config) if config.noisy_labels else None,
            seed=config.label_seed,
        )
    versions = pin_versions(lake)
    pages = prepare_pages(
        lake,
        ds_values=days,
        versions=versions,
        annotators=config.label_annotators(),
        encode=encode,
        encoder_name=config.encoder_name,
    )
    sweep_id = config.sweep_id or content_id("sweep", {**config.definition(), "inputs": pages.fingerprint()})
    created_at = datetime.now(UTC)
    grades_by_source = {"oracle": pages.test_truth, "page_labels": pages.test.labels}
    rows, records, per_query = [], [], []
    plan = sweep_plan(config)
    for seed, method, budget in tqdm(plan, desc=f"budget sweep {sweep_id}", disable=not config.progress):
        fitted = fit_and_evaluate(
            lake,
            pages,
            method=method,
            strategy=config.strategy,
            budget=budget,
            seed=seed,
            training=config.training,
            lightgbm=config.lightgbm,
            gbdt_smar=config.gbdt_smar,
            progress=False,
        )
        record = fitted.record
        records.append(record)
        for source in LABEL_SOURCES:
            value = record.test_metrics.get(f"{source}_ndcg_at_10")
            grades = grades_by_source[source]
            if value is None or grades is None:
                continue
            budget_value = 0.0 if record.budget is None else float(record.budget)
            per_query.append(
                {
                    "label_source": source,
                    "method": method,
                    "budget": budget_value,
                    "seed": seed,
                    "ndcg": ndcg_per_page(pages.test, fitted.test_scores, grades),
                }
            )
            rows.append(
                {
                    "sweep_id": sweep_id,
                    "run_id": record.run_id,
                    "method": method,
                    "strategy": record.strategy,
                    "budget": budget_value,
                    "seed": seed,
                    "label_source": source,
                    "ndcg_at_10": float(value),
                    "validation_ndcg_at_10": record.validation_ndcg_at_10,
                    "train_labelled_fraction": record.validation_metrics.get("train_labelled_fraction"),
                    "train_pages": record.validation_metrics.get("train_pages"),
                    "test_queries": record.test_metrics.get("test_queries"),
                    "train_seconds": fitted.seconds,
                    "input_versions": json.dumps(pages.input_versions, sort_keys=True),
                    "created_at": created_at,
                }
            )
        log.info("%s budget=%s seed=%d: %s", method, budget, seed, record.test_metrics)
        _keep_session_alive(lake)
    frame = pd.DataFrame.from_records(rows)
    summary = _write_reports(lake, config, sweep_id, pages, frame, per_query, grades_by_source)
    register_runs(lake, records)
    lake.overwrite_slice(rows, SWEEP_TABLE, {"sweep_id": sweep_id})
    return summary


def _keep_session_alive(lake: Lakehouse) -> None:
    """Touch the engine session: the embedded engine drops a Spark Connect session left idle for
    long, and a sweep trains for an hour between its writes."""
    if lake.spark is not None:
        lake.spark.sql("SELECT 1").collect()


def _write_reports(
    lake: Lakehouse,
    config: SweepConfig,
    sweep_id: str,
    pages: PreparedPages,
    frame: pd.DataFrame,
    per_query: list[dict[str, Any]],
    grades_by_source: dict[str, Any],
) -> SweepSummary:
    """The sweep's files under `reports/sweep/` (no engine needed) and its summary."""
    ceilings = {
        source: ceiling_ndcg_per_page(pages.test, grades)
        for source, grades in grades_by_source.items()
        if grades is not None and not np.isnan(grades).all()
    }
    matrices = per_query_matrices(per_query, config.seeds, ceilings)
    draws = BootstrapDraws.draw(len(config.seeds), pages.test.n_pages, replicates=config.bootstrap_replicates)
    aggregate = aggregate_sweep(frame, matrices, draws)
    comparisons = headline_comparisons(frame, config.budgets, matrices=matrices, draws=draws)
    comparisons["test_queries"] = pages.test.n_pages
    output_uri = join(lake.settings.reports, "sweep")
    output, publish = files.staged_folder(output_uri)  # written locally, published to the URI
    summary_path = output / f"{sweep_id}_summary.csv"
    aggregate.to_csv(summary_path, index=False)
    per_query_frame(matrices, pages.test.query_id).to_csv(output / f"{sweep_id}_per_query.csv", index=False)
    frame.to_csv(output / f"{sweep_id}_rows.csv", index=False)
    (output / f"{sweep_id}_comparisons.json").write_text(json.dumps(comparisons, indent=2, sort_keys=True))
    labels = f", labels noise {config.label_noise:g} / disagreement {config.label_disagreement:g}"
    title = (
        f"{sweep_id}: {len(config.seeds)} seeds, strategy {config.strategy}"
        f"{labels if config.noisy_labels else ''}, {pages.train.n_pages} train / "
        f"{pages.validation.n_pages} valid / {pages.test.n_pages} test queries"
    )
    plot_path = plot_sweep(aggregate, output / f"{sweep_id}.png", title=title)
    publish()
    return SweepSummary(
        sweep_id, frame, aggregate, comparisons, join(output_uri, plot_path.name), join(output_uri, summary_path.name),
        pages.input_versions,
    )  # fmt: skip

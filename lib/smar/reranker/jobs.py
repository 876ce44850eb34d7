"""Job bodies of step 3: `train_page_reranker` (config in, registered model out) and
`budget_sweep` (the paper's headline experiment). Shared by `jobs/train_page_reranker.py`, the
CLI (`smar train-reranker`, `smar budget-sweep`) and the sweep.

Pages and splits (`smar.splits`): the reranker trains on the annotated pages of `page_train`
queries, stops early on the page labels of `page_valid` queries (same budget), and is
evaluated on `test` queries, one page per query (its earliest day in the range), against the
test page labels and, where `truth.relevance` exists (synthetic data), against the hidden
truth ("oracle"). Test labels never reach training or model selection.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pyspark.sql import SparkSession

from smar.lake import Lakehouse
from smar.reranker.baselines import (
    FUSION_METHODS,
    LightGBMConfig,
    fusion_scores,
    production_modality_share,
    train_lightgbm,
)
from smar.reranker.features import (
    DEFAULT_ENCODER_NAME,
    PageStore,
    TextEncodeFunction,
    anchor_offsets,
    attach_page_labels,
    build_page_store,
    embedding_cache_file,
    grades_for_store,
    pin_versions,
    read_iso_label_anchors,
    read_page_labels,
    read_truth_grades,
    restrict_to_budget,
)
from smar.reranker.inference import day_range
from smar.reranker.registry import RunRecord, artifact_directory, make_run_id, register_runs
from smar.reranker.training import TrainingConfig, mean_ndcg, save_reranker, score_store, train_reranker

log = logging.getLogger(__name__)

#: Neural methods and the objective each trains.
NEURAL_METHODS: dict[str, dict[str, Any]] = {
    "smar_pairwise": {"objective": "smar", "intra_loss": "pairwise_hinge"},
    "smar_listwise": {"objective": "smar", "intra_loss": "list_mle"},
    "page_loss_only": {"objective": "page_loss_only"},
    "sft": {"objective": "page_loss_only"},  # always on 100% of the page labels
}
METHODS: tuple[str, ...] = (*NEURAL_METHODS, "lightgbm", *FUSION_METHODS)
EVALUATION_SPLITS: tuple[str, ...] = ("page_train", "page_valid", "test")


@dataclass
class PreparedPages:
    """Train / validation / test pages with page labels, plus the test pages' hidden truth."""

    train: PageStore
    validation: PageStore
    test: PageStore
    test_truth: NDArray[np.float32] | None
    input_versions: dict[str, int]
    ds_values: list[str]
    train_anchors: list[NDArray[np.int64]] | None = None


def prepare_pages(
    lake: Lakehouse,
    *,
    ds_values: list[str],
    versions: dict[str, int] | None = None,
    annotators: tuple[str, ...] | None = None,
    encode: TextEncodeFunction | None = None,
    encoder_name: str = DEFAULT_ENCODER_NAME,
    with_truth: bool = True,
) -> PreparedPages:
    """Build the pages of `ds_values` at pinned `versions` (default: the current ones) and attach
    the page labels (only `annotators` when given)."""
    versions = dict(versions) if versions is not None else pin_versions(lake)
    if "silver.page_labels" not in versions:
        raise FileNotFoundError("silver.page_labels does not exist: annotate pages first (or simulate labels)")
    store = build_page_store(
        lake, versions, ds_values=ds_values, page_unit="query", query_splits=EVALUATION_SPLITS,
        encode=encode, encoder_name=encoder_name,
        embedding_cache=embedding_cache_file(lake.settings.artifacts, encoder_name),
    )
    labels = read_page_labels(lake, versions["silver.page_labels"], ds_values=ds_values, annotators=annotators)
    store = attach_page_labels(store, labels)
    store = replace(store, input_versions={**store.input_versions, "silver.page_labels": versions["silver.page_labels"]})
    train = store.pages_in_splits(["page_train"]).labelled_pages()
    validation = store.pages_in_splits(["page_valid"]).labelled_pages()
    test = store.pages_in_splits(["test"]).first_page_per_query()
    truth = None
    if with_truth and lake.exists("truth.relevance"):
        truth = grades_for_store(test, read_truth_grades(lake, ds_values=ds_values), by_query_only=True)
    anchors = None
    input_versions = dict(store.input_versions)
    if "silver.iso_label_anchors" in versions:
        input_versions["silver.iso_label_anchors"] = versions["silver.iso_label_anchors"]
        anchors = anchor_offsets(train, read_iso_label_anchors(
            lake, versions["silver.iso_label_anchors"], ds_values=ds_values))
    log.info("pages: %d train, %d validation, %d test (versions %s)", train.n_pages, validation.n_pages,
             test.n_pages, input_versions)
    if train.n_pages == 0:
        raise ValueError(f"no annotated page_train pages in {ds_values[0]}..{ds_values[-1]}")
    return PreparedPages(train, validation, test, truth, input_versions, list(ds_values), anchors)


def labelled_fraction(store: PageStore) -> float:
    """Share of the candidates of `store` that carry a page label."""
    return float(store.label_mask.mean()) if store.n_items else math.nan


def test_metrics(pages: PreparedPages, scores: NDArray[np.float32], k: int = 10) -> dict[str, Any]:
    """NDCG@k on the test pages against their page labels and against the oracle truth."""
    metrics: dict[str, Any] = {"test_queries": pages.test.n_pages}
    if pages.test.label_mask.any():
        metrics[f"page_labels_ndcg_at_{k}"] = mean_ndcg(pages.test, scores, pages.test.labels, k=k)
    if pages.test_truth is not None:
        metrics[f"oracle_ndcg_at_{k}"] = mean_ndcg(pages.test, scores, pages.test_truth, k=k)
    return metrics


@dataclass
class FittedRun:
    """One trained (or fusion) run: its registry record and its test scores."""

    record: RunRecord
    test_scores: NDArray[np.float32]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def fit_and_evaluate(
    lake: Lakehouse,
    pages: PreparedPages,
    *,
    method: str,
    strategy: str | None,
    budget: float | None,
    seed: int,
    training: TrainingConfig | None = None,
    lightgbm: LightGBMConfig | None = None,
    resume: bool = False,
    progress: bool = True,
) -> FittedRun:
    """Train `method` on `pages` (labels restricted to `budget` with `strategy`; None = the labels
    as annotated; sft always uses them all), evaluate, and save the artifact. Not registered."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    started = time.perf_counter()
    if method == "sft":
        budget = 1.0
    if method in FUSION_METHODS:
        strategy, budget = None, None
    train, validation = pages.train, pages.validation
    if budget is not None and budget < 1.0:
        if strategy is None:
            raise ValueError("a budget below 1 needs a strategy to choose the labelled items")
        train = restrict_to_budget(train, strategy=strategy, budget=budget, seed=seed)
        validation = restrict_to_budget(validation, strategy=strategy, budget=budget, seed=seed + 1)

    hyperparameters: dict[str, Any]
    store_spec = {"text_dim": train.text_dim, "visual_dim": train.visual_dim, "user_dim": train.user_dim,
                  "encoder_name": train.encoder_name}
    if method in NEURAL_METHODS:
        config = replace(training or TrainingConfig(), seed=seed, **NEURAL_METHODS[method])
        hyperparameters = config.to_dict()
    elif method == "lightgbm":
        lightgbm_config = replace(lightgbm or LightGBMConfig(), seed=seed)
        hyperparameters = lightgbm_config.to_dict()
    else:
        hyperparameters = {"shares": production_modality_share(train)} if method == "fusion_interleave" else {}
    run_id = make_run_id(method, strategy=strategy, budget=budget, seed=seed, hyperparameters=hyperparameters,
                         input_versions=pages.input_versions, train_ds=pages.ds_values)
    directory = artifact_directory(lake.settings, run_id)
    extra_document = {"store": store_spec, "method": method, "run_id": run_id}
    validation_metrics: dict[str, Any] = {"validation_pages": validation.n_pages,
                                          "train_pages": train.n_pages,
                                          "train_labelled_fraction": labelled_fraction(train)}
    if method in NEURAL_METHODS:
        anchors = pages.train_anchors if config.anchors else None
        if config.anchors and not any(len(pairs) for pairs in anchors or []):
            log.warning("anchors are on but no iso-label anchor pair matches a training page")
        result = train_reranker(train, validation, config, checkpoint_dir=directory / "checkpoint",
                                resume=resume and (directory / "checkpoint" / "checkpoint.pt").is_file(),
                                progress=progress, anchors=anchors)
        save_reranker(result.model, config, directory, extra=extra_document)
        scores = score_store(result.model, pages.test)
        validation_scores = score_store(result.model, validation)
        validation_metrics.update(best_epoch=result.best_epoch, epochs_run=result.epochs_run,
                                  stopped_early=result.stopped_early)
    elif method == "lightgbm":
        model = train_lightgbm(train, validation, lightgbm_config)
        model.save(directory, extra=extra_document)
        scores = model.score(pages.test)
        validation_scores = model.score(validation)
        validation_metrics["best_iteration"] = model.best_iteration
    else:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(
            {"kind": "fusion", "parameters": hyperparameters, **extra_document}, indent=2, sort_keys=True))
        scores = fusion_scores(method, pages.test, hyperparameters)
        validation_scores = fusion_scores(method, validation, hyperparameters)
    validation_ndcg = mean_ndcg(validation, validation_scores, validation.labels) if validation.n_pages else math.nan
    validation_metrics["page_labels_ndcg_at_10"] = validation_ndcg
    metrics = test_metrics(pages, scores)
    headline = metrics.get("page_labels_ndcg_at_10", metrics.get("oracle_ndcg_at_10"))
    record = RunRecord(
        run_id=run_id, method=method, strategy=strategy, budget=budget, seed=seed,
        hyperparameters=hyperparameters, input_versions=pages.input_versions,
        train_ds=tuple(pages.ds_values), validation_metrics=validation_metrics, test_metrics=metrics,
        validation_ndcg_at_10=validation_ndcg, test_ndcg_at_10=headline, artifact_path=str(directory),
    )
    return FittedRun(record, scores, time.perf_counter() - started)


@dataclass(frozen=True)
class TrainSummary:
    """What `train_page_reranker` did."""

    run_id: str
    method: str
    strategy: str | None
    budget: float | None
    seed: int
    train_pages: int
    validation_pages: int
    test_pages: int
    validation_ndcg_at_10: float | None
    test_ndcg_at_10: float | None
    oracle_test_ndcg_at_10: float | None
    artifact_path: str
    input_versions: dict[str, int]
    seconds: float


def train_page_reranker(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds_start: str,
    ds_end: str,
    method: str = "smar_pairwise",
    strategy: str | None = "top",
    budget: float | None = None,
    seed: int | None = None,
    config: TrainingConfig | None = None,
    lightgbm: LightGBMConfig | None = None,
    annotators: tuple[str, ...] | None = None,
    resume: bool = False,
    progress: bool = True,
    encode: TextEncodeFunction | None = None,
    encoder_name: str = DEFAULT_ENCODER_NAME,
) -> TrainSummary:
    """Train one reranker (or baseline) on the annotated pages of ds_start..ds_end at the tables'
    current versions (recorded), save its artifact and MERGE its `gold.reranker_runs` row.

    `budget=None` trains on the page labels as annotated; a budget emulates a smaller annotation
    from them with `strategy`. `resume=True` continues an interrupted run of the same definition
    from its checkpoint."""
    # `spark` is the session `lake` writes through (job convention: (spark, lake, *, ...)).
    assert lake.spark is None or lake.spark is spark, "lake must be bound to the given session"
    pages = prepare_pages(lake, ds_values=day_range(ds_start, ds_end), annotators=annotators,
                          encode=encode, encoder_name=encoder_name)
    fitted = fit_and_evaluate(lake, pages, method=method, strategy=strategy, budget=budget,
                              seed=lake.settings.seed if seed is None else seed, training=config,
                              lightgbm=lightgbm, resume=resume, progress=progress)
    register_runs(lake, [fitted.record])
    record = fitted.record
    return TrainSummary(
        run_id=record.run_id, method=method, strategy=record.strategy, budget=record.budget, seed=record.seed,
        train_pages=pages.train.n_pages, validation_pages=pages.validation.n_pages, test_pages=pages.test.n_pages,
        validation_ndcg_at_10=record.validation_ndcg_at_10, test_ndcg_at_10=record.test_ndcg_at_10,
        oracle_test_ndcg_at_10=record.test_metrics.get("oracle_ndcg_at_10"),
        artifact_path=record.artifact_path, input_versions=pages.input_versions, seconds=fitted.seconds,
    )


def budget_sweep(spark: SparkSession, lake: Lakehouse, *, config: Any) -> Any:
    """Run the budget sweep of `config` (`smar.reranker.sweep.SweepConfig`); see
    `smar.reranker.sweep.run_budget_sweep`."""
    from smar.reranker.sweep import run_budget_sweep

    return run_budget_sweep(spark, lake, config)


def artifact_root(lake: Lakehouse) -> Path:
    """The folder holding every reranker run's artifact."""
    return lake.settings.artifacts / "rerankers"

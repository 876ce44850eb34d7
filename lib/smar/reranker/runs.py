"""Fitting one reranker run (or baseline) on prepared pages: the unit the job and the budget
sweep share.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from smar.errors import InputRefused, MissingInput
from smar.lake import Lakehouse
from smar.reranker.baselines import (
    LightGBMConfig,
    fusion_scores,
    production_modality_share,
    train_lightgbm,
)
from smar.reranker.gbdt_smar import GbdtSmarConfig, train_gbdt_smar
from smar.reranker.inputs import (
    build_page_store,
    pin_versions,
    read_iso_label_anchors,
    read_page_labels,
    read_truth_grades,
)
from smar.reranker.merge_selection import merge_hyperparameters, train_selected_merge
from smar.reranker.registry import RunRecord, artifact_directory, make_run_id
from smar.reranker.store import (
    PageStore,
    anchor_offsets,
    attach_page_labels,
    grades_for_store,
    restrict_to_budget,
)
from smar.reranker.text_cache import DEFAULT_ENCODER_NAME, TextEncodeFunction, embedding_cache_location
from smar.reranker.training import TrainingConfig, mean_ndcg, save_reranker, score_store, train_reranker
from smar.sampling import sample_dataset_queries
from smar.splits import query_split
from smar.storage import files
from smar.vocabulary import FUSION_METHODS, RERANKER_METHODS, content_hash

log = logging.getLogger(__name__)

#: The objective each neural method trains (smar_merge: `smar.reranker.merge_selection`).
METHOD_OBJECTIVES: dict[str, dict[str, Any]] = {
    "smar_merge": {},
    "smar_pairwise": {"objective": "smar", "intra_loss": "pairwise_hinge"},
    "smar_listwise": {"objective": "smar", "intra_loss": "list_mle"},
    "page_loss_only": {"objective": "page_loss_only"},
    "sft": {"objective": "page_loss_only"},  # always on 100% of the page labels
}
#: The query splits a run's page store holds: train, early stopping, evaluation.
PAGE_STORE_SPLITS: tuple[str, ...] = ("page_train", "page_valid", "test")
#: The splits whose labelled pages a run trains and early-stops on.
TRAINING_PAGE_SPLITS: frozenset[str] = frozenset({"page_train", "page_valid"})


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

    def fingerprint(self) -> str:
        """What a run on these pages read, independent of the tables' versions: the pages' contents
        (features and labels), the oracle grades and the anchors."""
        parts = [self.train.fingerprint(), self.validation.fingerprint(), self.test.fingerprint()]
        if self.test_truth is not None:
            parts.append(content_hash(self.test_truth.tolist(), length=64))
        if self.train_anchors is not None:
            parts.append(content_hash([pairs.tolist() for pairs in self.train_anchors], length=64))
        return content_hash(parts, length=64)


def store_query_ids(
    lake: Lakehouse, versions: Mapping[str, int], labels: pd.DataFrame, *, ds_values: Sequence[str]
) -> list[str]:
    """The queries whose pages a run materialises: every labelled page_train / page_valid query
    (the training and early-stopping pages, bounded by the annotation budget) and at most
    `max_evaluation_queries` test queries (a hash sample, `smar.sampling`). Only their rows are read
    from the pinned snapshots: thousands of pages, never the window's every impression."""
    labelled = {query for query in labels["query_id"].unique() if query_split(query) in TRAINING_PAGE_SPLITS}
    test = sample_dataset_queries(
        lake.dataset("silver.single_modal_scores", versions["silver.single_modal_scores"]),
        ds_values=ds_values, splits=("test",), max_per_split=lake.settings.max_evaluation_queries,
        what="the page reranker's test pages",
    )  # fmt: skip
    return sorted(labelled | set(test.ids()))


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
        raise MissingInput("silver.page_labels does not exist: annotate pages first (or simulate labels)")
    labels = read_page_labels(lake, versions["silver.page_labels"], ds_values=ds_values, annotators=annotators)
    store = build_page_store(
        lake,
        versions,
        ds_values=ds_values,
        page_unit="query",
        query_splits=PAGE_STORE_SPLITS,
        query_ids=store_query_ids(lake, versions, labels, ds_values=ds_values),
        encode=encode,
        encoder_name=encoder_name,
        embedding_cache=embedding_cache_location(lake.settings.artifacts, encoder_name),
    )
    store = attach_page_labels(store, labels)
    store = replace(
        store, input_versions={**store.input_versions, "silver.page_labels": versions["silver.page_labels"]}
    )
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
        anchors = anchor_offsets(
            train, read_iso_label_anchors(lake, versions["silver.iso_label_anchors"], ds_values=ds_values)
        )
    log.info(
        "pages: %d train, %d validation, %d test (versions %s)",
        train.n_pages,
        validation.n_pages,
        test.n_pages,
        input_versions,
    )
    if train.n_pages == 0:
        raise InputRefused(f"no annotated page_train pages in {ds_values[0]}..{ds_values[-1]}")
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
    gbdt_smar: GbdtSmarConfig | None = None,
    resume: bool = False,
    progress: bool = True,
) -> FittedRun:
    """Train `method` on `pages` (labels restricted to `budget` with `strategy`; None = the labels
    as annotated; sft always uses them all), evaluate, and save the artifact. Not registered."""
    if method not in RERANKER_METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {RERANKER_METHODS}")
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
    store_spec = {
        "text_dim": train.text_dim,
        "visual_dim": train.visual_dim,
        "user_dim": train.user_dim,
        "encoder_name": train.encoder_name,
    }
    if method in METHOD_OBJECTIVES:
        config = (training or TrainingConfig()).replace(seed=seed, **METHOD_OBJECTIVES[method])
        hyperparameters = merge_hyperparameters(config) if method == "smar_merge" else config.to_dict()
    elif method == "lightgbm":
        lightgbm_config = (lightgbm or LightGBMConfig()).replace(seed=seed)
        hyperparameters = lightgbm_config.to_dict()
    elif method == "gbdt_smar":
        gbdt_config = (gbdt_smar or GbdtSmarConfig()).replace(seed=seed)
        hyperparameters = gbdt_config.to_dict()
    else:
        hyperparameters = {"shares": production_modality_share(train)} if method == "fusion_interleave" else {}
    run_id = make_run_id(
        method,
        strategy=strategy,
        budget=budget,
        seed=seed,
        hyperparameters=hyperparameters,
        inputs=pages.fingerprint(),
        train_ds=pages.ds_values,
    )
    # The artifact is written in a local folder, then published to its URI (storage anywhere).
    artifact_uri = artifact_directory(lake.settings, run_id)
    directory, publish_artifact = files.staged_folder(artifact_uri)
    extra_document = {"store": store_spec, "method": method, "run_id": run_id}
    validation_metrics: dict[str, Any] = {
        "validation_pages": validation.n_pages,
        "train_pages": train.n_pages,
        "train_labelled_fraction": labelled_fraction(train),
    }
    if method in METHOD_OBJECTIVES:
        anchors = pages.train_anchors if config.anchors else None
        if config.anchors and not any(len(pairs) for pairs in anchors or []):
            log.warning("anchors are on but no iso-label anchor pair matches a training page")
        if method == "smar_merge":
            selected = train_selected_merge(
                train,
                validation,
                config,
                checkpoint_dir=directory / "checkpoint",
                resume=resume,
                progress=progress,
                anchors=anchors,
            )
            result, config = selected.result, selected.config
            validation_metrics.update(selected.describe())
        else:
            result = train_reranker(
                train,
                validation,
                config,
                checkpoint_dir=directory / "checkpoint",
                resume=resume and (directory / "checkpoint" / "checkpoint.pt").is_file(),
                progress=progress,
                anchors=anchors,
            )
        save_reranker(result.model, config, directory, extra=extra_document)
        scores = score_store(result.model, pages.test)
        validation_scores = score_store(result.model, validation)
        validation_metrics.update(
            best_epoch=result.best_epoch, epochs_run=result.epochs_run, stopped_early=result.stopped_early
        )
    elif method == "lightgbm":
        model = train_lightgbm(train, validation, lightgbm_config)
        model.save(directory, extra=extra_document)
        scores = model.score(pages.test)
        validation_scores = model.score(validation)
        validation_metrics["best_iteration"] = model.best_iteration
    elif method == "gbdt_smar":
        gbdt_model = train_gbdt_smar(train, validation, gbdt_config)
        gbdt_model.save(directory, extra=extra_document)
        scores = gbdt_model.score(pages.test)
        validation_scores = gbdt_model.score(validation)
        validation_metrics["best_iteration"] = gbdt_model.best_iteration
    else:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(
            json.dumps({"kind": "fusion", "parameters": hyperparameters, **extra_document}, indent=2, sort_keys=True)
        )
        scores = fusion_scores(method, pages.test, hyperparameters)
        validation_scores = fusion_scores(method, validation, hyperparameters)
    validation_ndcg = mean_ndcg(validation, validation_scores, validation.labels) if validation.n_pages else math.nan
    validation_metrics["page_labels_ndcg_at_10"] = validation_ndcg
    metrics = test_metrics(pages, scores)
    headline = metrics.get("page_labels_ndcg_at_10", metrics.get("oracle_ndcg_at_10"))
    record = RunRecord(
        run_id=run_id,
        method=method,
        strategy=strategy,
        budget=budget,
        seed=seed,
        hyperparameters=hyperparameters,
        input_versions=pages.input_versions,
        train_ds=tuple(pages.ds_values),
        validation_metrics=validation_metrics,
        test_metrics=metrics,
        validation_ndcg_at_10=validation_ndcg,
        test_ndcg_at_10=headline,
        artifact_path=artifact_uri,
    )
    publish_artifact()
    return FittedRun(record, scores, time.perf_counter() - started)

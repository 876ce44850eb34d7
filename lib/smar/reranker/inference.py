"""Scoring logged pages with a registered run (neural reranker, LightGBM, gbdt_smar or fusion).

`score_logged_pages` is what the replay job calls: every logged impression of the chosen days
and query splits, scored by the run registered as `run_id` in `gold.reranker_runs`. Each request
is one page (its own user); features are built exactly as for training (`build_page_store`,
page_unit="request") at the tables' current versions, which are logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pyspark.sql import DataFrame, SparkSession

from smar.lake import Lakehouse
from smar.reranker.baselines import LightGBMModel, fusion_scores
from smar.reranker.gbdt_smar import GbdtSmarModel
from smar.reranker.inputs import build_page_store, pin_versions
from smar.reranker.registry import RunRecord, load_run
from smar.reranker.store import PageStore
from smar.reranker.text_cache import DEFAULT_ENCODER_NAME, embedding_cache_location
from smar.reranker.training import load_reranker, score_store
from smar.storage import files
from smar.storage.uris import normalize_location
from smar.vocabulary import FUSION_METHODS, MODALITIES, day_range

log = logging.getLogger(__name__)

#: Columns of `score_logged_pages`' result, in order.
SCORED_IMPRESSION_SCHEMA = (
    "ds string, request_id string, query_id string, item_id string, modality string, position int, score double"
)


@dataclass
class RunScorer:
    """A registered run, loaded and ready to score `PageStore`s built to its input spec."""

    record: RunRecord
    kind: str  # "neural", "lightgbm", "gbdt_smar" or "fusion"
    document: dict[str, Any]
    model: Any

    @property
    def store_spec(self) -> dict[str, Any]:
        """Input widths and encoder the run was trained with."""
        return self.document.get("store", {})

    @property
    def needs_text(self) -> bool:
        return self.kind != "fusion"

    def build_store(
        self,
        lake: Lakehouse,
        versions: dict[str, int],
        *,
        ds_values: list[str],
        query_splits: tuple[str, ...],
        page_unit: str = "request",
        query_ids: Sequence[str] | None = None,
    ) -> PageStore:
        """Pages of `ds_values` with the run's feature spec."""
        spec = self.store_spec
        encoder_name = spec.get("encoder_name", DEFAULT_ENCODER_NAME)
        return build_page_store(
            lake,
            versions,
            ds_values=ds_values,
            page_unit=page_unit,  # type: ignore[arg-type]
            query_splits=query_splits,
            query_ids=query_ids,
            with_text=self.needs_text and encoder_name != "none",
            encoder_name=encoder_name,
            embedding_cache=embedding_cache_location(lake.settings.artifacts, encoder_name),
            visual_dim=spec.get("visual_dim"),
            user_dim=spec.get("user_dim"),
        )

    def score(self, store: PageStore) -> NDArray[np.float32]:
        """[N] scores of every item of `store`."""
        if self.kind == "neural":
            return score_store(self.model, store)
        if self.kind in ("lightgbm", "gbdt_smar"):
            return self.model.score(store)
        return fusion_scores(self.record.method, store, self.document.get("parameters", {}))


def load_scorer(lake: Lakehouse, run_id: str) -> RunScorer:
    """The run `run_id` from `gold.reranker_runs` with its artifact loaded."""
    record = load_run(lake, run_id)
    # A URI (or, in tables written before locations were URIs, a local path): any host can load it.
    directory = files.cached_local_tree(normalize_location(record.artifact_path, what="artifact_path"))
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"run {run_id}: artifact config {config_file} is missing")
    document = json.loads(config_file.read_text())
    kind = document.get("kind")
    model: Any
    if kind == "neural":
        model, _ = load_reranker(directory)
    elif kind == "lightgbm":
        model = LightGBMModel.load(directory)
    elif kind == "gbdt_smar":
        model = GbdtSmarModel.load(directory)
    elif kind == "fusion":
        if record.method not in FUSION_METHODS:
            raise ValueError(f"run {run_id}: fusion artifact for unknown method {record.method!r}")
        model = None
    else:
        raise ValueError(f"run {run_id}: artifact kind {kind!r} is unknown")
    return RunScorer(record, kind, document, model)


def score_logged_pages(
    spark: SparkSession,
    lake: Lakehouse,
    run_id: str,
    ds_start: str,
    ds_end: str,
    *,
    query_splits: tuple[str, ...] = ("test",),
    query_ids: Sequence[str] | None = None,
) -> DataFrame:
    """Every logged impression of days ds_start..ds_end whose query is in `query_splits` (and in
    `query_ids` when given: the replay's bounded sample), scored by registered run `run_id`:
    columns (ds, request_id, query_id, item_id, modality, position, score), one row per
    impression (row of `silver.single_modal_scores`), higher = better."""
    scorer = load_scorer(lake, run_id)
    days = day_range(ds_start, ds_end)
    versions = pin_versions(lake)
    log.info(
        "scoring run %s on %s..%s (splits %s) at versions %s", run_id, ds_start, ds_end, list(query_splits), versions
    )
    store = scorer.build_store(lake, versions, ds_values=days, query_splits=tuple(query_splits), query_ids=query_ids)
    scores = scorer.score(store) if store.n_items else np.zeros(0, dtype=np.float32)
    page_of_item = store.page_of_item
    frame = pd.DataFrame(
        {
            "ds": store.page_ds[page_of_item].astype(str),
            "request_id": store.request_id[page_of_item].astype(str),
            "query_id": store.query_id[page_of_item].astype(str),
            "item_id": store.item_id.astype(str),
            "modality": np.array(MODALITIES, dtype=object)[store.modality_id].astype(str),
            "position": store.position.astype(np.int32),
            "score": scores.astype(np.float64),
        }
    )
    if frame.empty:
        return spark.createDataFrame([], schema=SCORED_IMPRESSION_SCHEMA)
    return spark.createDataFrame(frame, schema=SCORED_IMPRESSION_SCHEMA)

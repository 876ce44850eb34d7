"""Job bodies of step 3: `train_page_reranker` (config in, registered model out) and
`budget_sweep` (the paper's headline experiment, `smar.reranker.sweep`). Both fit runs with
`smar.reranker.runs.fit_and_evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession

from smar.lake import Lakehouse
from smar.reranker.baselines import LightGBMConfig
from smar.reranker.gbdt_smar import GbdtSmarConfig
from smar.reranker.registry import register_runs
from smar.reranker.runs import fit_and_evaluate, prepare_pages
from smar.reranker.sweep import SweepConfig, SweepSummary, run_budget_sweep
from smar.reranker.text_cache import DEFAULT_ENCODER_NAME, TextEncodeFunction
from smar.reranker.training import TrainingConfig
from smar.storage.uris import join
from smar.vocabulary import DEFAULT_RERANKER_METHOD, day_range


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
    method: str = DEFAULT_RERANKER_METHOD,
    strategy: str | None = "top",
    budget: float | None = None,
    seed: int | None = None,
    config: TrainingConfig | None = None,
    lightgbm: LightGBMConfig | None = None,
    gbdt_smar: GbdtSmarConfig | None = None,
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
    pages = prepare_pages(
        lake, ds_values=day_range(ds_start, ds_end), annotators=annotators, encode=encode, encoder_name=encoder_name
    )
    fitted = fit_and_evaluate(
        lake,
        pages,
        method=method,
        strategy=strategy,
        budget=budget,
        seed=lake.settings.seed if seed is None else seed,
        training=config,
        lightgbm=lightgbm,
        gbdt_smar=gbdt_smar,
        resume=resume,
        progress=progress,
    )
    register_runs(lake, [fitted.record])
    record = fitted.record
    return TrainSummary(
        run_id=record.run_id,
        method=method,
        strategy=record.strategy,
        budget=record.budget,
        seed=record.seed,
        train_pages=pages.train.n_pages,
        validation_pages=pages.validation.n_pages,
        test_pages=pages.test.n_pages,
        validation_ndcg_at_10=record.validation_ndcg_at_10,
        test_ndcg_at_10=record.test_ndcg_at_10,
        oracle_test_ndcg_at_10=record.test_metrics.get("oracle_ndcg_at_10"),
        artifact_path=record.artifact_path,
        input_versions=pages.input_versions,
        seconds=fitted.seconds,
    )


def budget_sweep(spark: SparkSession, lake: Lakehouse, *, config: SweepConfig) -> SweepSummary:
    """Run the budget sweep of `config`; see `smar.reranker.sweep.run_budget_sweep`."""
    return run_budget_sweep(spark, lake, config)


def artifact_root(lake: Lakehouse) -> str:
    """The folder (a URI) holding every reranker run's artifact."""
    return join(lake.settings.artifacts, "rerankers")

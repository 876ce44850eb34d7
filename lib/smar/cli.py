"""The `smar` command line. Each command is a thin shell over `smar.pipeline`."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from smar.cli_options import EngineOption, VerboseOption, WarehouseOption
from smar.config import get_settings
from smar.eval_command import eval_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="SMAR: whole-page reranking via single-modal supervision, on a Delta lakehouse.",
)
# Wide enough for table names when output is piped (CI logs, Airflow task logs).
console = Console(width=None if sys.stdout.isatty() else 160)
app.add_typer(eval_app, name="eval")


@contextlib.contextmanager
def exit_code_2_on(*expected: type[BaseException]) -> Iterator[None]:
    """Inside the block, an `expected` error (bad input, a missing file) becomes one red line
    and exit code 2, the code the DAGs and scripts read as "refused"; any other error keeps its
    traceback."""
    try:
        yield
    except expected as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error


def _configure(warehouse: Optional[Path], engine: Optional[str], verbose: bool = False) -> None:
    # Settings are read from the environment once; CLI flags win by setting it first.
    if warehouse is not None:
        os.environ["SMAR_WAREHOUSE"] = str(warehouse)
    if engine is not None:
        os.environ["SMAR_ENGINE"] = engine
    get_settings.cache_clear()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pysail logs every session at INFO through RUST_LOG; keep the console readable.
    os.environ.setdefault("RUST_LOG", "error")


def _print_ingest(results: list, ds: str) -> None:
    table = Table(title=f"ingest ds={ds}")
    for column in ("table", "landed", "accepted", "rejected", "reject %", "top reasons"):
        table.add_column(column)
    for result in results:
        table.add_row(
            result.table,
            str(result.landed),
            str(result.accepted),
            str(result.rejected),
            f"{100 * result.reject_fraction:.2f}",
            "; ".join(f"{reason} ({count})" for reason, count in result.top_reasons),
        )
    console.print(table)


def print_tables() -> None:
    """Print every contracted table with version and row count."""
    from smar.lake import Lakehouse

    lake = Lakehouse(None, get_settings())
    table = Table(title=f"tables under {get_settings().warehouse.resolve()}")
    for column in ("table", "version", "rows", "partitioned by", "last operation", "last modified (UTC)"):
        table.add_column(column)
    for info in lake.list_tables():
        table.add_row(
            info.name,
            "-" if info.version is None else str(info.version),
            "-" if info.row_count is None else str(info.row_count),
            ", ".join(info.partition_by),
            info.last_operation or "-",
            info.last_modified.strftime("%Y-%m-%d %H:%M:%S") if info.last_modified else "-",
        )
    console.print(table)


@app.command()
def generate(
    ds: str = typer.Option(..., help="the day to generate, YYYY-MM-DD"),
    out: Path = typer.Option(..., help="folder for the raw files"),
    size: str = typer.Option("demo", help="tiny | demo | large"),
    seed: Optional[int] = typer.Option(None, help="default: $SMAR_SEED or the frozen default"),
    file_format: str = typer.Option("parquet", "--format", help="parquet | jsonl"),
) -> None:
    """Write one synthetic day as raw files, for `smar ingest --source files`."""
    from smar.pipeline import write_generated_files

    _configure(None, None)
    with console.status(f"generating {size} day {ds}"):
        paths = write_generated_files(ds, out, size=size, seed=seed if seed is not None else get_settings().seed, file_format=file_format)  # type: ignore[arg-type]
    for path in paths:
        console.print(f"wrote {path}")


@app.command()
def ingest(
    ds: str = typer.Option(..., help="the day to ingest, YYYY-MM-DD"),
    source: str = typer.Option("generator", help="generator | qilin | files"),
    path: Optional[Path] = typer.Option(None, help="qilin folder, or a file/folder of raw files"),
    table: Optional[str] = typer.Option(None, help="with a single file: the table it holds"),
    size: str = typer.Option("demo", help="generator size: tiny | demo | large"),
    seed: Optional[int] = typer.Option(None),
    max_reject_fraction: Optional[float] = typer.Option(None, help="fail above this fraction refused"),
    skip_quality: bool = typer.Option(False, "--skip-quality", help="skip the Great Expectations suites"),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[Path] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Validate raw input into bronze tables; refused rows go to bronze.rejects with reasons."""
    from smar.engine import spark_session
    from smar.ingest import IngestRejectedError
    from smar.lake import Lakehouse
    from smar.pipeline import run_ingest
    from smar.sources import SourceError

    _configure(warehouse, engine, verbose)
    with exit_code_2_on(IngestRejectedError, SourceError):
        with console.status(f"ingesting {source} for ds={ds}"), spark_session(app_name="smar-ingest") as spark:
            results = run_ingest(
                spark,
                Lakehouse(spark, get_settings()),
                ds=ds,
                source=source,  # type: ignore[arg-type]
                path=path,
                table=table,
                size=size,  # type: ignore[arg-type]
                seed=seed,
                max_reject_fraction=max_reject_fraction,
                run_quality_checks=not skip_quality,
            )
    _print_ingest(results, ds)


@app.command("train-single-modal")
def train_single_modal_command(
    ds: list[str] = typer.Option(..., "--ds", help="training day(s); repeat for several"),
    epochs: Optional[int] = typer.Option(None, help="maximum epochs per ranker, the best validation epoch is kept [default: 20]"),
    seed: Optional[int] = typer.Option(None),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[Path] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Train the four single-modal rankers from clicks (step 1) and register them."""
    from smar.lake import Lakehouse
    from smar.single_modal import train_single_modal

    _configure(warehouse, engine, verbose)
    settings = get_settings()
    with console.status(f"training single-modal rankers on {', '.join(ds)}"):
        summary = train_single_modal(Lakehouse(None, settings), ds_list=list(ds), epochs=epochs,
                                     seed=settings.seed if seed is None else seed, device=device)
    _print_ranker_evaluations(summary)


def _difference(delta: float, interval: tuple[float, float]) -> str:
    return f"{delta:+.4f} [{interval[0]:+.4f}, {interval[1]:+.4f}]"


def _print_ranker_evaluations(summary) -> None:
    table = Table(title=f"single-modal rankers {summary.model_version}: NDCG@10 within modality, held-out test queries")
    for column in ("modality", "queries", "ranker", "production order", "popularity",
                   "ranker − production [95% CI]", "ranker − popularity [95% CI]", "labels"):
        table.add_column(column)
    for evaluation in summary.evaluations:
        table.add_row(evaluation.modality, str(evaluation.queries), f"{evaluation.ranker_ndcg_at_10:.4f}",
                      f"{evaluation.production_ndcg_at_10:.4f}", f"{evaluation.popularity_ndcg_at_10:.4f}",
                      _difference(evaluation.ranker_ndcg_at_10 - evaluation.production_ndcg_at_10, evaluation.versus_production_ci),
                      _difference(evaluation.ranker_ndcg_at_10 - evaluation.popularity_ndcg_at_10, evaluation.versus_popularity_ci),
                      evaluation.label_source)
    console.print(table)
    console.print("A difference counts as a win only when its whole interval is above 0.")
    console.print(f"artifacts: {summary.artifact_dir}")


@app.command("score")
def score_command(
    ds: str = typer.Option(..., help="the day to score"),
    model_version: Optional[str] = typer.Option(None, help="default: the CURRENT registered version"),
    gpu_batch_size: int = typer.Option(1024, help="rows per model forward pass (independent of Arrow batches)"),
    device: str = typer.Option("auto"),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[Path] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Score every impression of a day with its modality's ranker -> silver.single_modal_scores."""
    from smar.engine import spark_session
    from smar.lake import Lakehouse
    from smar.single_modal import score_single_modal

    _configure(warehouse, engine, verbose)
    with console.status(f"scoring ds={ds}"), spark_session(app_name="smar-score") as spark:
        summary = score_single_modal(spark, Lakehouse(spark, get_settings()), ds=ds, model_version=model_version,
                                     gpu_batch_size=gpu_batch_size, device=device)
    console.print(
        f"scored {summary.scored} impressions of ds={summary.ds} with {summary.model_version} "
        f"({summary.unique_query_texts} unique query texts, {summary.unique_item_texts} unique item texts encoded); "
        f"rejected {summary.rejected}"
    )


@app.command()
def tables(warehouse: Optional[Path] = WarehouseOption) -> None:
    """List every table with its Delta version and row count."""
    _configure(warehouse, None)
    print_tables()


@app.command()
def demo(
    ds: str = typer.Option("2026-11-01", help="the demo day"),
    size: str = typer.Option("demo", help="tiny | demo | large"),
    strategy: str = typer.Option("top", help="annotation strategy: top | slice | random | stratified"),
    budget: float = typer.Option(0.2, help="fraction of each modality's candidates given a page label"),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[Path] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Run the pipeline end to end on the embedded engine and print what it wrote."""
    from smar.engine import spark_session
    from smar.lake import Lakehouse
    from smar.pipeline import run_ingest

    _configure(warehouse, engine or "embedded", verbose)
    settings = get_settings()
    console.rule(f"SMAR demo: size={size}, ds={ds}, warehouse={settings.warehouse.resolve()}")
    import torch

    from smar.annotation.commands import print_cost
    from smar.annotation.jobs import run_annotation_round_trip
    from smar.replay.jobs import replay_evaluate
    from smar.reranker.jobs import train_page_reranker
    from smar.single_modal import score_single_modal, train_single_modal

    # Small torch models train many times faster single-threaded on a busy 2-core machine.
    torch.set_num_threads(1)

    day = date.fromisoformat(ds)
    training_days = [(day - timedelta(days=offset)).isoformat() for offset in (2, 1, 0)]
    with spark_session(app_name="smar-demo") as spark:
        lake = Lakehouse(spark, settings)
        for training_day in training_days:
            with console.status(f"step 0: generate synthetic search logs of {training_day} and ingest them into bronze"):
                results = run_ingest(spark, lake, ds=training_day, source="generator", size=size)  # type: ignore[arg-type]
            _print_ingest(results, training_day)
        with console.status(f"step 1: train the single-modal rankers from clicks of {', '.join(training_days)}"):
            summary = train_single_modal(lake, ds_list=training_days, seed=settings.seed)
        _print_ranker_evaluations(summary)
        with console.status(f"step 1: score every impression of {ds} through pandas UDFs"):
            scoring = score_single_modal(spark, lake, ds=ds)
        console.print(f"scored {scoring.scored} impressions of {ds} ({scoring.unique_query_texts} query texts and "
                      f"{scoring.unique_item_texts} item texts encoded once each); rejected {scoring.rejected}")

        with console.status(f"step 2: budgeted annotation round trip ({strategy}, budget {budget:g}) for {ds}"):
            round_trip = run_annotation_round_trip(spark, lake, ds=ds, strategy=strategy, budget=budget,
                                                   seed=settings.seed, noise=0.1, disagreement=0.1)
        console.print(f"annotation: {round_trip.labels_accepted} page labels imported from simulated Label Studio exports")
        print_cost(list(round_trip.cost))

        with console.status(f"step 3: train the SMAR page reranker on {ds}'s page labels"):
            trained = train_page_reranker(spark, lake, ds_start=ds, ds_end=ds, method="smar_pairwise",
                                          strategy=strategy, seed=settings.seed, progress=False)
        console.print(
            f"registered reranker run {trained.run_id}: {trained.train_pages} train / {trained.validation_pages} "
            f"validation / {trained.test_pages} test pages; test NDCG@10 vs page labels {trained.test_ndcg_at_10:.4f}"
        )

        with console.status("step 4: replay the reranker against the production order on held-out queries"):
            replay = replay_evaluate(spark, lake, control="production", candidate=f"run:{trained.run_id}",
                                     ds_start=ds, ds_end=ds)
        console.print(f"[bold]decision {replay.decision}[/bold] for run:{trained.run_id} vs production "
                      f"(replay {replay.run_id})")
        for reason in replay.reasons:
            console.print(f"  - {reason}")
        console.print(f"report: {replay.report_html}")
    print_tables()
    console.print(f"Great Expectations Data Docs: {settings.reports.resolve() / 'gx'}")


def _register_step_commands() -> None:
    # Each pipeline step keeps its commands next to its code; they are mounted here.
    from smar.annotation.commands import register as register_annotation
    from smar.replay.commands import register as register_replay
    from smar.reranker.commands import register as register_reranker

    register_annotation(app)
    register_reranker(app)
    register_replay(app)


_register_step_commands()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

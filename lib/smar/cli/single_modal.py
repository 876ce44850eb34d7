"""`smar train-single-modal` and `smar score`: step 1, the single-modal rankers."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from smar.cli.common import (
    EngineOption,
    VerboseOption,
    WarehouseOption,
    configure,
    console,
    days_option,
    difference,
    offline_lakehouse,
    open_lakehouse,
)
from smar.config import get_settings
from smar.storage.uris import display

if TYPE_CHECKING:
    from smar.single_modal.jobs import TrainingSummary

commands = typer.Typer()


def print_ranker_evaluations(summary: TrainingSummary) -> None:
    """Per modality: NDCG@10 of the ranker and both baselines, with the differences' intervals."""
    table = Table(title=f"single-modal rankers {summary.model_version}: NDCG@10 within modality, held-out test queries")
    for column in ("modality", "queries", "ranker", "production order", "popularity",
                   "ranker − production [95% CI]", "ranker − popularity [95% CI]", "labels"):  # fmt: skip
        table.add_column(column)
    for evaluation in summary.evaluations:
        table.add_row(
            evaluation.modality, str(evaluation.queries), f"{evaluation.ranker_ndcg_at_10:.4f}",
            f"{evaluation.production_ndcg_at_10:.4f}", f"{evaluation.popularity_ndcg_at_10:.4f}",
            difference(evaluation.ranker_ndcg_at_10 - evaluation.production_ndcg_at_10, evaluation.versus_production_ci),
            difference(evaluation.ranker_ndcg_at_10 - evaluation.popularity_ndcg_at_10, evaluation.versus_popularity_ci),
            evaluation.label_source,
        )  # fmt: skip
    console.print(table)
    console.print("A difference counts as a win only when its whole interval is above 0.")
    console.print(f"artifacts: {display(summary.artifact_dir)}")


@commands.command("train-single-modal")
def train_single_modal_command(
    ds: list[str] = typer.Option(..., "--ds", callback=days_option, help="training day(s); repeat for several"),
    epochs: Optional[int] = typer.Option(
        None, help="maximum epochs per ranker, the best validation epoch is kept [default: 20]"
    ),
    seed: Optional[int] = typer.Option(None),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Train the four single-modal rankers from clicks (step 1) and register them.

    Training reads the tables through delta-rs and needs no Spark session; under spark-submit it
    still opens one, because YARN's cluster mode fails an application whose driver never creates
    a SparkContext."""
    from smar.engine import launched_by_spark_submit
    from smar.single_modal.jobs import train_single_modal

    configure(warehouse, engine, verbose)
    settings = get_settings()
    with console.status(f"training single-modal rankers on {', '.join(ds)}"), contextlib.ExitStack() as stack:
        lake = stack.enter_context(open_lakehouse("smar-train-single-modal")) if launched_by_spark_submit() else None
        summary = train_single_modal(
            lake or offline_lakehouse(), ds_list=list(ds), epochs=epochs,
            seed=settings.seed if seed is None else seed, device=device,
        )  # fmt: skip
    print_ranker_evaluations(summary)


@commands.command("score")
def score_command(
    ds: str = typer.Option(callback=days_option, default=..., help="the day to score"),
    model_version: Optional[str] = typer.Option(None, help="default: the CURRENT registered version"),
    gpu_batch_size: int = typer.Option(1024, help="rows per model forward pass (independent of Arrow batches)"),
    device: str = typer.Option("auto"),
    max_reject_fraction: Optional[float] = typer.Option(
        None,
        help="refuse the day (write only its rejects) above this fraction of unscorable impressions [default: $SMAR_MAX_REJECT_FRACTION or 0.05]",
    ),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Score every impression of a day with its modality's ranker -> silver.single_modal_scores."""
    from smar.single_modal.jobs import score_single_modal

    configure(warehouse, engine, verbose)
    with console.status(f"scoring ds={ds}"), open_lakehouse(f"smar-score-{ds}") as lake:
        summary = score_single_modal(
            lake.session,
            lake,
            ds=ds,
            model_version=model_version,
            gpu_batch_size=gpu_batch_size,
            device=device,
            max_reject_fraction=max_reject_fraction,
        )
    console.print(
        f"scored {summary.scored} impressions of ds={summary.ds} with {summary.model_version} "
        f"({summary.unique_query_texts} unique query texts, {summary.unique_item_texts} unique item texts "
        f"encoded); rejected {summary.rejected}"
    )

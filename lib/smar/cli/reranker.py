"""The commands of step 3: `smar train-reranker` and `smar budget-sweep`."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.table import Table

from smar.cli.common import (
    EngineOption,
    VerboseOption,
    WarehouseOption,
    configure,
    console,
    days_option,
    open_lakehouse,
    parse_floats,
    parse_ints,
    set_torch_threads,
)
from smar.storage.uris import display
from smar.vocabulary import DEFAULT_RERANKER_METHOD, RERANKER_METHODS

commands = typer.Typer()


@commands.command(name="train-reranker")
def train_reranker_command(
    ds_start: str = typer.Option(callback=days_option, default=..., help="first day of annotated pages, YYYY-MM-DD"),
    ds_end: Optional[str] = typer.Option(callback=days_option, default=None, help="last day (default: ds_start)"),
    method: str = typer.Option(
        DEFAULT_RERANKER_METHOD,
        help=" | ".join(RERANKER_METHODS) + " (smar_merge sets its own models' objectives: docs/reranker.md)",
    ),
    budget: Optional[float] = typer.Option(
        None, help="emulate this label budget from the page labels (default: use them as annotated)"
    ),
    strategy: str = typer.Option("top", help="which items a budget keeps: top | slice | random | stratified"),
    seed: Optional[int] = typer.Option(None, help="default: $SMAR_SEED"),
    epochs: Optional[int] = typer.Option(None, help="maximum epochs (early stopping on validation NDCG@10)"),
    intra_weight: Optional[float] = typer.Option(None, help="lambda (default: per intra loss, see docs/reranker.md)"),
    margin: Optional[float] = typer.Option(None, help="gamma, the hinge margin"),
    page_loss: Optional[str] = typer.Option(None, help="list_mle | softmax_cross_entropy | lambda_loss_ndcg"),
    anchors: bool = typer.Option(False, "--anchors", help="add iso-label anchor pairs"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    annotator: Optional[list[str]] = typer.Option(None, help="only these annotators' labels (repeatable)"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run from its checkpoint"),
    torch_threads: Optional[int] = typer.Option(1, help="torch CPU threads (0: torch's default)"),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Train one page reranker (or baseline) and register it in gold.reranker_runs."""
    from smar.reranker.jobs import train_page_reranker
    from smar.reranker.training import TrainingConfig

    configure(warehouse, engine, verbose)
    set_torch_threads(torch_threads)
    overrides: dict[str, Any] = {
        name: value
        for name, value in (
            ("epochs", epochs),
            ("intra_weight", intra_weight),
            ("margin", margin),
            ("page_loss", page_loss),
        )
        if value is not None
    }
    config = TrainingConfig(device=device, anchors=anchors).replace(**overrides)
    with open_lakehouse("smar-train-reranker") as lake:
        summary = train_page_reranker(
            lake.session,
            lake,
            ds_start=ds_start,
            ds_end=ds_end or ds_start,
            method=method,
            strategy=strategy,
            budget=budget,
            seed=seed,
            config=config,
            annotators=tuple(annotator) if annotator else None,
            resume=resume,
        )
    table = Table(title=f"train-reranker {summary.method}")
    table.add_column("field")
    table.add_column("value")
    for name, value in summary.__dict__.items():
        table.add_row(name, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)


@commands.command(name="budget-sweep")
def budget_sweep_command(
    ds_start: str = typer.Option(callback=days_option, default=..., help="first day, YYYY-MM-DD"),
    ds_end: Optional[str] = typer.Option(callback=days_option, default=None, help="last day (default: ds_start)"),
    seeds: str = typer.Option("0,1,2", help="comma-separated seeds"),
    budgets: str = typer.Option("0.1,0.2,0.3,1.0", help="comma-separated label budgets"),
    methods: Optional[str] = typer.Option(None, help="comma-separated methods (default: all)"),
    strategy: str = typer.Option("top", help="top | slice | random | stratified"),
    simulate_labels: bool = typer.Option(
        True,
        "--simulate-labels/--use-labels",
        help="simulate a full annotation from truth.relevance, or use silver.page_labels as is",
    ),
    epochs: Optional[int] = typer.Option(None, help="maximum epochs per neural run"),
    label_noise: float = typer.Option(
        0.0, help="with --simulate-labels: the simulated annotators' noise (the model of simulate-annotators)"
    ),
    label_disagreement: float = typer.Option(
        0.0, help="with --simulate-labels: the simulated annotators' disagreement"
    ),
    sweep_id: Optional[str] = typer.Option(None, help="default: a hash of the sweep's definition"),
    torch_threads: Optional[int] = typer.Option(1, help="torch CPU threads (0: torch's default)"),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """NDCG@10 vs annotation budget over seeds: gold.budget_sweep, a PNG plot and a summary."""
    from smar.reranker.jobs import budget_sweep
    from smar.reranker.sweep import SweepConfig
    from smar.reranker.training import TrainingConfig

    configure(warehouse, engine, verbose)
    set_torch_threads(torch_threads)
    training = TrainingConfig() if epochs is None else TrainingConfig(epochs=epochs)
    config = SweepConfig(
        ds_start=ds_start,
        ds_end=ds_end or ds_start,
        seeds=parse_ints(seeds),
        budgets=parse_floats(budgets),
        methods=tuple(methods.split(",")) if methods else RERANKER_METHODS,
        strategy=strategy,
        training=training,
        simulate_labels=simulate_labels,
        label_noise=label_noise,
        label_disagreement=label_disagreement,
        sweep_id=sweep_id,
    )
    with open_lakehouse("smar-budget-sweep") as lake:
        summary = budget_sweep(lake.session, lake, config=config)
    table = Table(
        title=f"budget sweep {summary.sweep_id}: NDCG@10 on test queries (mean; 95% CI over test queries and seeds)"
    )
    for column in ("label source", "method", "budget", "seeds", "NDCG@10", "95% CI"):
        table.add_column(column)
    for row in summary.aggregate.itertuples(index=False):
        interval = "-" if row.ci_low != row.ci_low else f"[{row.ci_low:.4f}, {row.ci_high:.4f}]"
        table.add_row(
            row.label_source, row.method, f"{row.budget:g}", str(row.seeds), f"{row.ndcg_at_10:.4f}", interval
        )
    console.print(table)
    console.print(json.dumps(summary.comparisons, indent=2, default=str))
    console.print(f"plot: {display(summary.plot_path)}\nsummary: {display(summary.summary_path)}")

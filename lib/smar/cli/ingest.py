"""`smar generate` and `smar ingest`: raw logs of one day -> bronze tables and bronze.rejects."""

from __future__ import annotations

from collections.abc import Sequence
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
    open_lakehouse,
)
from smar.config import get_settings
from smar.storage.uris import display

if TYPE_CHECKING:
    from smar.ingest.jobs import TableIngestResult

commands = typer.Typer()


def print_ingest(results: Sequence[TableIngestResult], ds: str) -> None:
    """One row per table: landed, accepted, rejected and the top reasons."""
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


@commands.command()
def generate(
    ds: str = typer.Option(callback=days_option, default=..., help="the day to generate, YYYY-MM-DD"),
    out: str = typer.Option(..., help="folder for the raw files (a local path or a URI: s3://bucket/raw/...)"),
    size: str = typer.Option("demo", help="tiny | demo | large"),
    seed: Optional[int] = typer.Option(None, help="default: $SMAR_SEED or the frozen default"),
    file_format: str = typer.Option("parquet", "--format", help="parquet | jsonl"),
) -> None:
    """Write one synthetic day as raw files, for `smar ingest --source files`."""
    from smar.ingest.jobs import write_generated_files

    configure(None, None)
    with console.status(f"generating {size} day {ds}"):
        paths = write_generated_files(
            ds, out, size=size,  # type: ignore[arg-type]
            seed=seed if seed is not None else get_settings().seed, file_format=file_format,
        )  # fmt: skip
    for path in paths:
        console.print(f"wrote {display(path)}")


@commands.command()
def ingest(
    ds: str = typer.Option(callback=days_option, default=..., help="the day to ingest, YYYY-MM-DD"),
    source: str = typer.Option("generator", help="generator | qilin | files"),
    path: Optional[str] = typer.Option(
        None, help="qilin folder, or a file/folder of raw files (a local path or a URI: s3://bucket/raw/...)"
    ),
    table: Optional[str] = typer.Option(None, help="with a single file: the table it holds"),
    size: str = typer.Option("demo", help="generator size: tiny | demo | large"),
    seed: Optional[int] = typer.Option(None),
    max_reject_fraction: Optional[float] = typer.Option(None, help="fail above this fraction refused"),
    skip_quality: bool = typer.Option(False, "--skip-quality", help="skip the Great Expectations suites"),
    engine: Optional[str] = EngineOption,
    warehouse: Optional[str] = WarehouseOption,
    verbose: bool = VerboseOption,
) -> None:
    """Validate raw input into bronze tables; refused rows go to bronze.rejects with reasons."""
    from smar.ingest.jobs import run_ingest

    configure(warehouse, engine, verbose)
    with console.status(f"ingesting {source} for ds={ds}"), open_lakehouse(f"smar-ingest-{ds}") as lake:
        results = run_ingest(
            lake.session, lake, ds=ds, source=source, path=path, table=table, size=size,  # type: ignore[arg-type]
            seed=seed, max_reject_fraction=max_reject_fraction, run_quality_checks=not skip_quality,
        )  # fmt: skip
    print_ingest(results, ds)

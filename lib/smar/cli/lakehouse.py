"""`smar tables`: every contracted table with its Delta version and row count."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from smar.cli.common import WarehouseOption, configure, console, offline_lakehouse
from smar.config import get_settings
from smar.storage.uris import display

commands = typer.Typer()


def print_tables() -> None:
    """Print every contracted table with version and row count."""
    lake = offline_lakehouse()
    table = Table(title=f"tables under {display(get_settings().warehouse)}")
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


@commands.command()
def tables(warehouse: Optional[str] = WarehouseOption) -> None:
    """List every table with its Delta version and row count."""
    configure(warehouse, None)
    print_tables()

"""Options shared by every `smar` command, defined once (step modules import them)."""

from __future__ import annotations

import typer

EngineOption = typer.Option(None, "--engine", help="auto | embedded | cluster (default: $SMAR_ENGINE or auto)")
WarehouseOption = typer.Option(None, "--warehouse", help="warehouse root (default: $SMAR_WAREHOUSE or ./warehouse)")
VerboseOption = typer.Option(False, "--verbose", "-v", help="log at INFO")

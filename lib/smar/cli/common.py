"""What every `smar` command shares: the console, the shared options, settings from flags, the
one way a command opens its engine and lakehouse, and the mapping from errors to exit codes.

The mapping (`smar.errors`): `InputRefused` and `ArtifactError` print one red line and exit 2,
`ConcurrentWriteError` exits 75; any other exception is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from smar.config import get_settings
from smar.errors import SmarError
from smar.lake import Lakehouse
from smar.vocabulary import check_run_id, parse_day

# Wide enough for table names when output is piped (CI logs, Airflow task logs).
console = Console(width=None if sys.stdout.isatty() else 160)
# Errors go to stderr, so a command's stdout stays what it prints on success (`smar eval` output).
error_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

EngineOption = typer.Option(None, "--engine", help="auto | embedded | cluster (default: $SMAR_ENGINE or auto)")
WarehouseOption = typer.Option(None, "--warehouse", help="warehouse root (default: $SMAR_WAREHOUSE or ./warehouse)")
VerboseOption = typer.Option(False, "--verbose", "-v", help="log at INFO")
SeedOption = typer.Option(None, help="default: $SMAR_SEED")

Callback = TypeVar("Callback", bound=Callable[..., Any])


def days_option(value: Any) -> Any:
    """Option callback: every `--ds`-like value must be a real day (`InputRefused`, exit 2)."""
    with exit_codes():  # parsing runs before the command: refuse here, in one line
        for day in value if isinstance(value, list) else [value]:
            if day is not None:
                parse_day(day)
    return value


def run_id_option(value: Optional[str]) -> Optional[str]:
    """Option callback: a run id becomes folder names and table slices; refuse anything else."""
    with exit_codes():
        return None if value is None else check_run_id(value)


def configure(warehouse: Optional[str], engine: Optional[str], verbose: bool = False) -> None:
    """Apply the shared flags: settings are read from the environment once, so flags win by
    setting it first."""
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


@contextlib.contextmanager
def open_lakehouse(app_name: str, *, engine: Optional[str] = None) -> Iterator[Lakehouse]:
    """The engine session of one command (stopped on exit, error or not) and the lakehouse on it."""
    from smar.engine import spark_session

    with spark_session(engine, app_name=app_name) as spark:  # type: ignore[arg-type]
        yield Lakehouse(spark, get_settings())


def offline_lakehouse() -> Lakehouse:
    """A lakehouse without an engine: delta-rs reads only (training, listing tables)."""
    return Lakehouse(None, get_settings())


@contextlib.contextmanager
def exit_codes() -> Iterator[None]:
    """Inside the block, an error of `smar.errors` becomes one red line and its exit code;
    any other error keeps its traceback."""
    try:
        yield
    except SmarError as error:
        error_console.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=error.exit_code) from error


def with_exit_codes(callback: Callback) -> Callback:
    """`callback` run inside `exit_codes()`; the signature is kept, so typer reads its options."""

    @functools.wraps(callback)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with exit_codes():
            return callback(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def difference(delta: float, interval: tuple[float, float]) -> str:
    """`+0.0123 [+0.0050, +0.0200]`: a difference with its interval."""
    return f"{delta:+.4f} [{interval[0]:+.4f}, {interval[1]:+.4f}]"


def parse_floats(text: str) -> tuple[float, ...]:
    """`0.1,0.2` -> (0.1, 0.2)."""
    return tuple(float(part) for part in text.split(",") if part.strip())


def parse_ints(text: str) -> tuple[int, ...]:
    """`0,1,2` -> (0, 1, 2)."""
    return tuple(int(part) for part in text.split(",") if part.strip())


def split_values(values: list[str]) -> tuple[str, ...]:
    """Repeatable options that also accept commas: `--split a --split b,c` -> (a, b, c)."""
    return tuple(value.strip() for part in values for value in part.split(",") if value.strip())


def set_torch_threads(threads: Optional[int]) -> None:
    """Small models on a shared CPU: extra intra-op threads mostly spin and wait (5-40x slower
    measured on a loaded 2-core machine), so the commands default to one thread."""
    if threads:
        import torch

        torch.set_num_threads(threads)

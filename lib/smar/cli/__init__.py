"""The `smar` command line: one module per pipeline step, each a thin shell over that step's
`jobs.py`, and the spark-submit entry points in `jobs/` call the very same commands
(`run_job`), so the two front doors cannot drift.

| module | commands |
|---|---|
| `ingest` | generate, ingest |
| `single_modal` | train-single-modal, score |
| `annotation` | build-tasks, export-tasks, simulate-annotators, import-labels, iso-label-round, annotation-cost, annotation-round-trip; the group `annotation` (push, simulate, pull: a Label Studio server) |
| `reranker` | train-reranker, budget-sweep |
| `replay` | replay |
| `evaluate` | eval |
| `lakehouse` | tables |
| `demo` | demo |

Shared options, settings, the engine session and the error -> exit code mapping: `common`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer
from rich.markup import escape

from smar.cli import annotation, demo, ingest, lakehouse, replay, reranker, single_modal
from smar.cli.common import error_console, with_exit_codes
from smar.cli.evaluate import eval_app
from smar.errors import SmarError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="SMAR: whole-page reranking via single-modal supervision, on a Delta lakehouse.",
)

for _module in (ingest, single_modal, annotation, reranker, replay, lakehouse, demo):
    for _command in _module.commands.registered_commands:
        assert _command.callback is not None
        _command.callback = with_exit_codes(_command.callback)
        app.registered_commands.append(_command)
    # Groups (`smar annotation push|simulate|pull`): their commands get the same exit codes.
    for _group in _module.commands.registered_groups:
        assert _group.typer_instance is not None
        for _command in _group.typer_instance.registered_commands:
            assert _command.callback is not None
            _command.callback = with_exit_codes(_command.callback)
        app.registered_groups.append(_group)
assert eval_app.registered_callback is not None and eval_app.registered_callback.callback is not None
eval_app.registered_callback.callback = with_exit_codes(eval_app.registered_callback.callback)
app.add_typer(eval_app, name="eval")


def main(argv: Sequence[str] | None = None) -> int:
    """Run `smar` with `argv` (default: the process arguments) and return its exit code."""
    import click

    try:
        # Not standalone: click returns a command's exit code instead of calling sys.exit.
        result = app(args=list(sys.argv[1:] if argv is None else argv), standalone_mode=False)
    except click.ClickException as error:  # a usage error: bad or missing option
        error.show()
        return error.exit_code
    except click.Abort:
        return 1
    except SmarError as error:  # raised outside a command's body (a parameter callback, say)
        error_console.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        return error.exit_code
    return result if isinstance(result, int) else 0


def run_job(command: str, argv: Sequence[str] | None = None) -> int:
    """The entry point of `jobs/<job>.py`: `smar <command> <argv>` logging at INFO, for spark-submit.
    A command of a group is spelt with a space: `run_job("annotation pull")`."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if "--verbose" not in arguments and "-v" not in arguments:
        arguments.append("--verbose")
    return main([*command.split(), *arguments])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

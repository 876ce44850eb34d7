"""One error hierarchy for the whole project, and the exit code each kind means.

| class | meaning | CLI / job exit code |
|---|---|---|
| `InputRefused` | the input is wrong (a bad option, an unusable file, a day with no rows, a table not written yet); nothing was written, or only the rejects | 2 |
| `ArtifactError` | a model artifact is missing, corrupt or of another layout | 2 |
| `ConcurrentWriteError` | another run committed to the same table slice first, and retries did not help | 75 (EX_TEMPFAIL: try again) |
| `ServiceError` | a server this step talks to (Label Studio) cannot be reached, failed, or answered what it should not | 69 (EX_UNAVAILABLE) |
| `MissingDependency` | an optional package this command needs is not installed; the message names the install command | 2 |
| anything else | a bug: the traceback is kept | 1 |

`smar.cli.common.exit_codes` is the one place that maps these to exit codes. Raise the most
specific subclass; keep a plain `ValueError` for a caller's programming error (a pure function
given impossible arguments), which must read as a bug, not as bad input.
"""

from __future__ import annotations

#: Exit codes, as the DAGs and scripts read them.
EXIT_REFUSED = 2
EXIT_CONCURRENT_WRITE = 75
EXIT_SERVICE_UNAVAILABLE = 69


class SmarError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code: int = 1


class InputRefused(SmarError, ValueError):
    """The input is wrong; nothing was written, or only the rejects (`bronze.rejects`).

    A `ValueError` too, so callers that only know the standard library still catch it.
    """

    exit_code = EXIT_REFUSED


class SourceError(InputRefused):
    """Raw input as a whole is unusable (no such file, unknown format, a file matching no table)."""


class IngestRejected(InputRefused):
    """Too many rows were refused, or the suite failed; only the rejects were written."""


class LabelImportError(InputRefused):
    """A label file (Label Studio export or CSV) cannot be read at all; nothing was imported."""


class MissingInput(InputRefused, FileNotFoundError):
    """A table, file or registered object that this step reads does not exist yet."""


class ArtifactError(SmarError, RuntimeError):
    """A model artifact is missing, corrupt, or was written with another layout."""

    exit_code = EXIT_REFUSED


class ConcurrentWriteError(SmarError, RuntimeError):
    """Another run committed to the same table slice first, and retrying did not resolve it."""

    exit_code = EXIT_CONCURRENT_WRITE


class ServiceError(SmarError, RuntimeError):
    """A server this step talks to (Label Studio) cannot be reached, failed, or answered
    something it should not; our tables are as they were before the failing call.

    Not `InputRefused`: the request was ours and well formed; rerunning once the server is back
    is the remedy (Airflow's retries do that)."""

    exit_code = EXIT_SERVICE_UNAVAILABLE


class MissingDependency(SmarError, ImportError):
    """An optional package (an extra of the `smar` package) is not installed; the message names
    the command that installs it."""

    exit_code = EXIT_REFUSED

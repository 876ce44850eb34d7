"""A real, throw-away Label Studio server for tests and demos (importable by scripts too).

    from tests.integration.label_studio_server import running_server
    with running_server() as server:        # (url, token) = (server.url, server.token)
        ...

What it does:

* finds the server's executable: `$LABEL_STUDIO_BIN`, else the venv that
  `scripts/label_studio_venv.sh` builds (idempotent; it installs the pinned `label-studio` into
  `~/.cache/smar/label-studio-venv` on first use, about 3 minutes), never the project's `.venv`;
* starts `label-studio start` on 127.0.0.1 on a free port chosen now, with a generated admin user,
  password and legacy API token, SQLite and media under a temporary folder (nothing under
  `~/.local/share`), the version check and analytics off (the network outside is closed);
* starts from a copy of a migrated, empty SQLite database kept beside the venv (built once by
  `label-studio version`, which applies the migrations and exits): applying Label Studio's
  migrations to a new database is most of a cold start (about 100 s against about 10 s on the
  2-core machine), and the copy leaves nothing shared between servers;
* waits until `/health` answers and `/api/projects` accepts the token;
* stops it by PID at the end: SIGTERM to the process group it was started in (its own session, so
  the group holds the server and its children only), SIGKILL after a grace period.

Run as a script it starts one server, prints `url token`, writes url, token, username and password
to `<data-dir>/server.json` (mode 0600) and stays up until Ctrl-C or SIGTERM:
`python tests/integration/label_studio_server.py [--port N] [--data-dir DIR]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_SCRIPT = REPO / "scripts" / "label_studio_venv.sh"
STARTUP_TIMEOUT_S = float(os.environ.get("LABEL_STUDIO_STARTUP_TIMEOUT", "300"))
STOP_GRACE_S = 15.0


class LabelStudioStartError(RuntimeError):
    """The server did not come up; the message carries the tail of its log."""


@dataclass(frozen=True)
class LabelStudioServer:
    url: str
    token: str = field(repr=False)
    username: str
    password: str = field(repr=False)
    data_dir: Path
    log_path: Path
    pid: int
    startup_s: float

    def log_tail(self, chars: int = 4000) -> str:
        return _tail(self.log_path, chars)


def _tail(path: Path, chars: int) -> str:
    try:
        return path.read_text("utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def label_studio_executable(*, install: bool = True) -> Path:
    """`$LABEL_STUDIO_BIN`, else the server venv's `label-studio` (built by the venv script when
    `install`, else FileNotFoundError if it is not there yet)."""
    configured = os.environ.get("LABEL_STUDIO_BIN")
    if configured:
        path = Path(configured)
        if not os.access(path, os.X_OK):
            raise FileNotFoundError(f"LABEL_STUDIO_BIN={configured} is not an executable")
        return path
    if not install:
        venv = Path(os.environ.get("LABEL_STUDIO_VENV", Path.home() / ".cache/smar/label-studio-venv"))
        path = venv / "bin" / "label-studio"
        if not os.access(path, os.X_OK):
            raise FileNotFoundError(f"{path} not found: run {VENV_SCRIPT}")
        return path
    completed = subprocess.run(["bash", str(VENV_SCRIPT)], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise FileNotFoundError(f"{VENV_SCRIPT} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    return Path(completed.stdout.strip().splitlines()[-1])


def _venv_of(executable: Path) -> Path:
    return Path(os.path.realpath(executable)).parent.parent if executable.parent.name == "bin" else executable.parent


def template_database(executable: Path, *, timeout_s: float = 900.0) -> Path | None:
    """A migrated, empty Label Studio SQLite database for this executable's version, built once
    into `<venv>/smar-template/` (removed with the venv); None when the version cannot be told
    (a server not installed by the venv script), in which case each start migrates its own."""
    venv = _venv_of(executable)
    dist_infos = sorted(venv.glob("lib/python*/site-packages/label_studio-*.dist-info"))
    if not dist_infos:
        return None
    version = dist_infos[-1].name.removeprefix("label_studio-").removesuffix(".dist-info")
    template = venv / "smar-template" / f"label_studio-{version}.sqlite3"
    if template.is_file():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="smar-ls-template-", dir=template.parent) as scratch:
        data_dir = Path(scratch) / "data"
        data_dir.mkdir()
        completed = subprocess.run(
            [str(executable), "version", "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s,
            env=server_environment(data_dir), cwd=scratch, check=False,
        )  # fmt: skip
        database = data_dir / "label_studio.sqlite3"
        if completed.returncode != 0 or not database.is_file():
            raise LabelStudioStartError(
                f"could not build the template database ({completed.returncode}):\n{completed.stdout[-2000:]}"
                f"{completed.stderr[-2000:]}"
            )
        os.replace(database, template)  # atomic: a parallel builder's copy is as good
    return template


# Straight to 127.0.0.1, whatever proxy the environment names.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_LISTENING = re.compile(rb"Starting development server at http://127\.0\.0\.1:(\d+)/")


def _get(url: str, token: str | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Token {token}")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def server_environment(data_dir: Path) -> dict[str, str]:
    environment = dict(os.environ)
    # Everything under data_dir: SQLite database, media, exports, the generated .env.
    environment["LABEL_STUDIO_BASE_DATA_DIR"] = str(data_dir)
    # No call to pypi.org for the latest version, no analytics: the network outside is closed.
    environment["LABEL_STUDIO_LATEST_VERSION_CHECK"] = "false"
    environment["LABEL_STUDIO_COLLECT_ANALYTICS"] = "false"
    # Token auth for a generated admin (legacy token = the one passed on the command line).
    environment["LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK"] = "true"
    for key in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "DJANGO_DB", "DATABASE_URL"):
        environment.pop(key, None)  # ours, or a host setting that would point it elsewhere
    return environment


def stop_process_group(pid: int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to the process group led by `pid` (started with start_new_session, so only the
    server and its children), then SIGKILL if it is still there after `grace_s`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def start_command(
    executable: Path, *, port: int, data_dir: Path, username: str, password: str, token: str
) -> list[str]:
    """The `label-studio start` command line. Every value goes in `--flag=value` form: a random
    `token_urlsafe` password starts with "-" once in 64 draws, and argparse reads a separate
    "-..." word as the next option ("--password: expected one argument"), which failed a CI run."""
    return [
        str(executable), "start", "--no-browser",
        "--internal-host=127.0.0.1", f"--port={port}",
        f"--data-dir={data_dir}",
        f"--username={username}", f"--password={password}",
        f"--user-token={token}", "--enable-legacy-api-token",
    ]  # fmt: skip


@contextlib.contextmanager
def running_server(
    *,
    data_dir: Path | None = None,
    port: int | None = None,
    executable: Path | None = None,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    use_template: bool = True,
) -> Iterator[LabelStudioServer]:
    """Start Label Studio, wait until it answers with the token, yield it, stop it. The startup
    time reported (`startup_s`) counts from the launch, not the template's one-off build."""
    executable = executable or label_studio_executable()
    template = template_database(executable) if use_template else None
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="smar-ls-")))
        data_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        username = "smar-admin@example.org"
        password = secrets.token_urlsafe(16)
        token = secrets.token_hex(20)  # 40 characters, the legacy token's length
        log_path = data_dir / "label-studio.log"
        database = data_dir / "data" / "label_studio.sqlite3"
        if template is not None and not database.exists():
            database.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(template, database)
        command = start_command(executable, port=port, data_dir=data_dir / "data",
                                username=username, password=password, token=token)  # fmt: skip
        started = time.monotonic()
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server_environment(data_dir / "data"),
                cwd=data_dir,
                start_new_session=True,
            )
        stack.callback(stop_process_group, process.pid)
        stack.callback(process.poll)
        url = f"http://127.0.0.1:{port}"
        while True:
            # Label Studio moves to another port by itself when the one asked for was taken
            # meanwhile; follow it rather than wait on a port it does not listen on.
            with contextlib.suppress(OSError):
                listening = _LISTENING.search(log_path.read_bytes())
                if listening:
                    url = f"http://127.0.0.1:{int(listening.group(1))}"
            if process.poll() is not None:
                raise LabelStudioStartError(
                    f"label-studio exited with {process.returncode} before answering:\n{_tail(log_path, 4000)}"
                )
            if time.monotonic() - started > startup_timeout_s:
                raise LabelStudioStartError(
                    f"label-studio did not answer {url}/health within {startup_timeout_s:.0f} s:\n"
                    f"{_tail(log_path, 4000)}"
                )
            with contextlib.suppress(OSError):
                status, _ = _get(f"{url}/health", timeout=2.0)
                if status == 200:
                    status, body = _get(f"{url}/api/projects", token, timeout=10.0)
                    if status == 200 and "results" in json.loads(body):
                        break
            time.sleep(0.5)
        yield LabelStudioServer(
            url=url,
            token=token,
            username=username,
            password=password,
            data_dir=data_dir,
            log_path=log_path,
            pid=process.pid,
            startup_s=time.monotonic() - started,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    stop = {"now": False}

    def on_signal(signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with running_server(data_dir=args.data_dir, port=args.port) as server:
        credentials = server.data_dir / "server.json"
        credentials.touch(mode=0o600)
        credentials.write_text(json.dumps({
            "url": server.url, "token": server.token, "username": server.username,
            "password": server.password, "pid": server.pid,
        }, indent=1) + "\n", encoding="utf-8")  # fmt: skip
        print(f"{server.url} {server.token}", flush=True)
        print(
            f"label-studio up in {server.startup_s:.1f} s (pid {server.pid}); log {server.log_path}",
            file=sys.stderr, flush=True,
        )  # fmt: skip
        while not stop["now"]:
            time.sleep(0.5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

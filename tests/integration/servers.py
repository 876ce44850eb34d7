"""An S3-compatible server on loopback (moto's server mode) for tests, demos and CI.

Standard library only, so that scripts and Make targets can run it with any Python 3.11:

    python tests/integration/servers.py with-s3 --bucket lake -- .venv/bin/smar demo --size tiny

moto cannot live in the project's virtualenv: every botocore release requires
`python-dateutil<3` and the project's lock pins `python-dateutil==4.0.0`. It needs no shared
code with the project anyway (it is a separate process that speaks HTTP), so it lives in its own
virtualenv, built from the pinned lock `tests/integration/requirements-moto.txt` by
`scripts/moto_env.sh` (idempotent; `~/.cache/smar/moto-venv` by default). `moto_server_bin()`
finds it: `$SMAR_MOTO_SERVER`, then that virtualenv, then `moto_server` on PATH.

The server is started as `moto_server -H 127.0.0.1 -p <free port>`, polled until it answers,
given a bucket (a plain `PUT /<bucket>`: moto does not check signatures), and stopped by PID
(SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
MOTO_LOCK = REPO_ROOT / "tests" / "integration" / "requirements-moto.txt"
MOTO_ENV_SCRIPT = REPO_ROOT / "scripts" / "moto_env.sh"

# moto accepts any credentials; these are the values every tool here is given.
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"
REGION = "us-east-1"


def smar_cache_dir() -> Path:
    """Per-machine cache for things installed once (moto's virtualenv, Spark's jars)."""
    return Path(os.environ.get("SMAR_CACHE", Path.home() / ".cache" / "smar"))


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def moto_server_bin() -> Path:
    """The `moto_server` executable, or a clear error saying how to install it."""
    explicit = os.environ.get("SMAR_MOTO_SERVER")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(smar_cache_dir() / "moto-venv" / "bin" / "moto_server")
    on_path = shutil.which("moto_server")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(
        "moto_server not found (looked at "
        + ", ".join(str(c) for c in candidates)
        + f"); install it with: bash {MOTO_ENV_SCRIPT}"
    )


def wait_until(predicate, *, timeout: float, interval: float = 0.1, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def http_status(url: str, method: str = "GET", timeout: float = 2.0) -> int | None:
    """HTTP status of a request, or None when nothing answers."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "PUT" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


def stop_pid(pid: int, *, grace: float = 10.0) -> None:
    """SIGTERM one process we started, SIGKILL it after `grace` seconds; reap it if it is ours."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return
        except ChildProcessError:  # not our child: poll for its disappearance instead
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


@dataclass
class S3Server:
    """A running moto server with one bucket; `env` holds the standard AWS_* variables."""

    endpoint: str
    bucket: str
    pid: int
    log_path: Path
    started_in_s: float
    _process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def env(self) -> dict[str, str]:
        """The standard variables every tool here reads (see lib/smar/storage.py)."""
        return s3_env(self.endpoint)

    def uri(self, *parts: str) -> str:
        """`s3://<bucket>/<parts...>`."""
        key = "/".join(part.strip("/") for part in parts if part)
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"

    def create_bucket(self, bucket: str) -> None:
        create_bucket(self.endpoint, bucket)

    def stop(self) -> None:
        if self._process is not None:
            stop_pid(self._process.pid)
            self._process = None


def s3_env(endpoint: str) -> dict[str, str]:
    """The standard environment variables for an S3-compatible endpoint over plain http."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ALLOW_HTTP": "true" if endpoint.startswith("http://") else "false",
        # Keep the AWS SDKs (pysail's Rust SDK, boto) away from ~/.aws and the EC2 metadata
        # service: the loopback server is the only thing they may talk to.
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def create_bucket(endpoint: str, bucket: str) -> None:
    status = http_status(f"{endpoint}/{bucket}", method="PUT", timeout=10)
    if status not in (200, 409):  # 409: BucketAlreadyOwnedByYou
        raise RuntimeError(f"could not create bucket {bucket!r} at {endpoint}: HTTP {status}")


def start_s3_server(
    bucket: str = "lake",
    *,
    port: int | None = None,
    log_dir: Path | None = None,
    timeout: float = 60.0,
) -> S3Server:
    """Start `moto_server` on 127.0.0.1 (a free port unless given) and create `bucket`."""
    binary = moto_server_bin()
    port = port or free_port()
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="smar-moto-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"moto-{port}.log"
    endpoint = f"http://{HOST}:{port}"
    started = time.monotonic()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(binary), "-H", HOST, "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not the server directly
        )
    server = S3Server(endpoint, bucket, process.pid, log_path, 0.0, process)
    try:

        def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError(
                    f"moto_server exited with {process.returncode}; log {log_path}:\n"
                    + log_path.read_text(errors="replace")[-2000:]
                )
            return http_status(f"{endpoint}/moto-api/") == 200

        wait_until(answers, timeout=timeout, what=f"moto_server on {endpoint}")
        create_bucket(endpoint, bucket)
    except BaseException:
        server.stop()
        raise
    server.started_in_s = time.monotonic() - started
    return server


@contextmanager
def s3_server(bucket: str = "lake", **kwargs) -> Iterator[S3Server]:
    """A moto server for the duration of a `with` block; stopped by PID on exit."""
    server = start_s3_server(bucket, **kwargs)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for a block and restore the previous values afterwards."""
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("with-s3", help="start moto, run a command with the AWS_* variables, stop")
    run.add_argument("--bucket", default="lake")
    run.add_argument("--port", type=int, default=None)
    run.add_argument("--log-dir", type=Path, default=None)
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command and arguments")
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("give a command after --")
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="smar-moto-"))
    with s3_server(args.bucket, port=args.port, log_dir=log_dir) as server:
        print(
            f"servers: moto on {server.endpoint} (pid {server.pid}, bucket {server.bucket}, "
            f"started in {server.started_in_s:.2f} s, log {server.log_path})",
            file=sys.stderr,
            flush=True,
        )
        env = {**os.environ, **server.env, "SMAR_S3_BUCKET": server.bucket}
        status = subprocess.call(cmd, env=env)
    if status == 0 and args.log_dir is None:
        shutil.rmtree(log_dir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(_main())

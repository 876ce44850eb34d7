"""A local Spark standalone cluster (one master, N workers on 127.0.0.1) for tests and users.

Started with the `spark-class` that ships in the pyspark wheel (the wheel has no `sbin/` start
scripts for master and workers):

    spark-class org.apache.spark.deploy.master.Master --host 127.0.0.1 --port P --webui-port U
    spark-class org.apache.spark.deploy.worker.Worker --host 127.0.0.1 ... spark://127.0.0.1:P

When running as root, the last worker is started in its own mount namespace
(`unshare -m --propagation private`) with a tmpfs mounted over each folder in `isolate`
(typically the driver's warehouse, artifacts, reports and temp folders, and the checkout's
`lib/`), so that it and its executors behave like another host that cannot see the driver's
disk. `spark-class` ends in `exec java ...` and `unshare` execs its command, so each PID we keep
is the daemon's JVM itself; `stop()` signals exactly those PIDs.

Executors run the project's interpreter: pass `spark.pyspark.python` (see `submit_command`).
`smar` reaches them through `--py-files` (a zip or the wheel); with an isolated worker that is
the only way, since the editable install in the venv points at the checkout's `lib/`, which is
hidden there.

Standard library only; run it directly for users and Make targets:

    python tests/integration/spark_cluster.py with-cluster --workers 2 -- spark-submit ...
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

try:
    from .servers import HOST, free_port, smar_cache_dir, stop_pid, wait_until
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from servers import HOST, free_port, smar_cache_dir, stop_pid, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


def project_python() -> Path:
    """The interpreter executors must run: `$SMAR_PYTHON`, else the checkout's .venv, else ours."""
    explicit = os.environ.get("SMAR_PYTHON")
    if explicit:
        return Path(explicit)
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return venv if venv.exists() else Path(sys.executable)


def spark_home(python: Path | None = None) -> Path:
    """The pyspark package folder (it holds bin/spark-class, bin/spark-submit and jars/)."""
    python = python or project_python()
    out = subprocess.run(
        [str(python), "-c", "import os, pyspark; print(os.path.dirname(pyspark.__file__))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def can_isolate() -> tuple[bool, str]:
    """Whether a worker can get its own mount namespace here, and why not."""
    if os.geteuid() != 0:
        return False, "not root: cannot unshare a mount namespace for the isolated worker"
    unshare = shutil.which("unshare")
    if not unshare:
        return False, "unshare (util-linux) is not installed"
    probe = tempfile.mkdtemp(prefix="smar-unshare-probe-")
    try:
        result = subprocess.run(
            [
                unshare,
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"mount -t tmpfs -o size=1m tmpfs {shlex.quote(probe)}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        os.rmdir(probe)
    if result.returncode != 0:
        return False, f"unshare -m / mount tmpfs failed: {result.stderr.strip()[:200]}"
    return True, ""


def jar_settings(cache: Path | None = None) -> dict[str, str]:
    """The jar settings every spark-submit passes, written by scripts/spark_jars.sh (resolved
    once per machine): `--packages` through the machine's Ivy cache, the AWS SDK bundle on the
    classpath (see the script)."""
    conf = (cache or smar_cache_dir() / "jars") / "spark-submit.conf"
    if not conf.is_file():
        raise FileNotFoundError(f"{conf} is missing; run: bash {REPO_ROOT / 'scripts/spark_jars.sh'}")
    settings = {}
    for line in conf.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def cached_jars(cache: Path | None = None) -> list[str]:
    """The resolved jar files (for `--jars` or extraClassPath) listed by scripts/spark_jars.sh."""
    listing = (cache or smar_cache_dir() / "jars") / "jars.txt"
    if not listing.is_file():
        raise FileNotFoundError(f"{listing} is missing; run: bash {REPO_ROOT / 'scripts/spark_jars.sh'}")
    return [jar.removeprefix("file://") for jar in listing.read_text().strip().split(",") if jar]


@dataclass
class SparkCluster:
    master_url: str
    ui_url: str
    log_dir: Path
    pids: dict[str, int]
    isolated_worker: str | None
    isolated_paths: list[str]
    isolation_skipped: str
    started_in_s: float = 0.0
    _processes: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)

    def state(self) -> dict:
        """The master's JSON status (workers, apps)."""
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=5) as response:
            return json.load(response)

    def rss_mib(self) -> dict[str, float]:
        """Resident memory of the cluster's processes (daemons, executors and their Python
        workers), in MiB, keyed `name` or `name/<pid>`."""
        result: dict[str, float] = {}
        for name, pid in self.pids.items():
            for key, rss in tree_rss_mib(pid).items():
                result[name if key == pid else f"{name}/{key}"] = rss
        return result

    def stop(self, *, remove_app_dirs: bool = True) -> None:
        """Stop workers (they kill their executors), then the master, by PID. Applications'
        folders (each holds a copy of every --packages jar, about 0.7 GB) are removed; the
        daemons' logs stay in `log_dir`."""
        for name in sorted(self._processes, key=lambda n: n == "master"):
            stop_pid(self._processes[name].pid, grace=15)
        self._processes.clear()
        if remove_app_dirs:
            for app_dir in self.log_dir.glob("worker*/app-*"):
                shutil.rmtree(app_dir, ignore_errors=True)


def tree_rss_mib(pid: int) -> dict[int, float]:
    """Resident memory in MiB of a process and all its descendants, by PID."""
    pids = [pid, *_descendants(pid)]
    sizes = {p: _rss_mib(p) for p in pids}
    return {p: size for p, size in sizes.items() if size > 0}


def run_measured(
    cmd: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path, timeout: float
) -> tuple[int, float]:
    """Run `cmd` (a spark-submit, say), its output appended to `log`, killed after `timeout`
    seconds; returns (exit code, peak RSS in MiB of its process tree: the driver JVM and Python)."""
    peak = 0.0
    with open(log, "a") as handle:
        handle.write(f"\n$ {' '.join(cmd)}\n")
        handle.flush()
        process = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd)
        started = time.monotonic()
        try:
            while process.poll() is None:
                peak = max(peak, sum(tree_rss_mib(process.pid).values()))
                if time.monotonic() - started > timeout:
                    process.kill()
                    break
                time.sleep(0.5)
        finally:
            returncode = process.wait()
    return returncode, peak


def _descendants(pid: int) -> list[int]:
    children = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            children.extend(int(c) for c in text)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    result = list(children)
    for child in children:
        result.extend(_descendants(child))
    return result


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def start_cluster(
    *,
    workers: int = 2,
    cores_per_worker: int = 1,
    memory_per_worker: str = "2g",
    isolate: Sequence[str | os.PathLike] = (),
    isolate_last_worker: bool = True,
    log_dir: Path | None = None,
    daemon_memory: str = "512m",
    tmpfs_size: str = "512m",
    timeout: float = 180.0,
    env: Mapping[str, str] | None = None,
) -> SparkCluster:
    """Start a master and `workers` workers on 127.0.0.1; wait until all of them registered.

    `isolate`: folders hidden (tmpfs) from the last worker when `isolate_last_worker` and the
    namespace can be made (root); missing folders are created first, so the driver cannot create
    them later and leak them. `env` is added to every daemon's environment (and so to executors).
    """
    python = project_python()
    home = spark_home(python)
    spark_class = home / "bin" / "spark-class"
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="smar-cluster-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    base_env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOG_DIR": str(log_dir),
        "SPARK_DAEMON_MEMORY": daemon_memory,
        "PYSPARK_PYTHON": str(python),
        # Bind everything (daemons, executors) to loopback, not the host's first interface.
        "SPARK_LOCAL_IP": HOST,
        # Finished applications' folders (with their copies of --packages jars) are removed
        # a minute after they end instead of after 7 days.
        "SPARK_WORKER_OPTS": "-Dspark.worker.cleanup.enabled=true "
        "-Dspark.worker.cleanup.interval=60 -Dspark.worker.cleanup.appDataTtl=60",
        **(env or {}),
    }
    base_env.pop("SPARK_CONF_DIR", None)
    isolation_ok, why_not = can_isolate() if (isolate_last_worker and workers > 0) else (False, "")
    isolated_paths = [str(Path(p).resolve()) for p in isolate] if isolation_ok else []
    for path in isolated_paths:
        Path(path).mkdir(parents=True, exist_ok=True)

    master_port, master_ui = free_port(), free_port()
    master_url = f"spark://{HOST}:{master_port}"
    ui_url = f"http://{HOST}:{master_ui}"
    cluster = SparkCluster(
        master_url,
        ui_url,
        log_dir,
        {},
        None,
        isolated_paths,
        "" if isolation_ok or not isolate_last_worker else why_not,
    )
    started = time.monotonic()

    def launch(name: str, argv: list[str]) -> None:
        log = open(log_dir / f"{name}.out", "ab")
        try:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=base_env,
                cwd=log_dir,
                start_new_session=True,
            )
        finally:
            log.close()
        cluster._processes[name] = process
        cluster.pids[name] = process.pid

    try:
        launch(
            "master",
            [
                str(spark_class),
                "org.apache.spark.deploy.master.Master",
                "--host",
                HOST,
                "--port",
                str(master_port),
                "--webui-port",
                str(master_ui),
            ],
        )
        wait_until(lambda: _answers(ui_url, cluster), timeout=timeout, what=f"master UI {ui_url}")
        for index in range(1, workers + 1):
            name = f"worker{index}"
            work_dir = log_dir / name
            work_dir.mkdir(exist_ok=True)
            argv = [
                str(spark_class),
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                HOST,
                "--port",
                str(free_port()),
                "--webui-port",
                str(free_port()),
                "--cores",
                str(cores_per_worker),
                "--memory",
                memory_per_worker,
                "--work-dir",
                str(work_dir),
                master_url,
            ]
            if isolation_ok and index == workers:
                mounts = (
                    " && ".join(f"mount -t tmpfs -o size={tmpfs_size} tmpfs {shlex.quote(p)}" for p in isolated_paths)
                    or "true"
                )
                argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", f"{mounts} && exec {shlex.join(argv)}"]
                cluster.isolated_worker = name
            launch(name, argv)
        wait_until(
            lambda: _alive_workers(cluster) >= workers,
            timeout=timeout,
            interval=0.5,
            what=f"{workers} workers registered with {master_url}",
        )
    except BaseException:
        cluster.stop()
        raise
    cluster.started_in_s = time.monotonic() - started
    return cluster


def _answers(ui_url: str, cluster: SparkCluster) -> bool:
    _check_alive(cluster)
    try:
        with urllib.request.urlopen(f"{ui_url}/json/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _alive_workers(cluster: SparkCluster) -> int:
    _check_alive(cluster)
    try:
        return int(cluster.state().get("aliveworkers", 0))
    except OSError:
        return 0


def _check_alive(cluster: SparkCluster) -> None:
    for name, process in cluster._processes.items():
        if process.poll() is not None:
            log = cluster.log_dir / f"{name}.out"
            raise RuntimeError(
                f"{name} exited with {process.returncode}; log {log}:\n" + log.read_text(errors="replace")[-3000:]
            )


@contextmanager
def spark_cluster(**kwargs) -> Iterator[SparkCluster]:
    cluster = start_cluster(**kwargs)
    try:
        yield cluster
    finally:
        cluster.stop()


def application_confs(storage_confs: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The `--conf`s every application on the local cluster runs with (the cluster test and
    `scripts/cluster_demo.py` alike): delta-spark, the storage settings, small executors, and
    `extra` on top (keyword names with dots are passed as a mapping: `**{"spark.x": "y"}`)."""
    from smar.engine import DELTA_CONFIGS

    return {
        **DELTA_CONFIGS,
        **storage_confs,
        "spark.executor.memory": "1g",
        "spark.executor.cores": "1",
        "spark.cores.max": "2",
        "spark.sql.shuffle.partitions": "4",
        # Delta rebuilds a snapshot with 50 tasks by default: minutes on 2 busy cores.
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.ui.enabled": "false",
        # Tasks start once both executors registered, so the isolated one always takes part.
        "spark.scheduler.minRegisteredResourcesRatio": "1.0",
        "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s",
        **extra,
    }


def submit_command(
    cluster: SparkCluster,
    script: str | os.PathLike,
    args: Sequence[str] = (),
    *,
    confs: Mapping[str, str] | None = None,
    py_files: Sequence[str | os.PathLike] = (),
    use_packages: bool = True,
    python: Path | None = None,
) -> list[str]:
    """The `spark-submit --master spark://...` command line for `script` on `cluster`.

    `use_packages`: `--packages` resolved through the machine's Ivy cache (scripts/spark_jars.sh);
    otherwise `--jars` with the same cached files.
    """
    python = python or project_python()
    home = spark_home(python)
    all_confs = {
        # The driver's RPC and file server on loopback too (executors fetch jars from it).
        "spark.driver.host": HOST,
        "spark.driver.bindAddress": HOST,
        "spark.pyspark.python": str(python),
        "spark.pyspark.driver.python": str(python),
        **(jar_settings() if use_packages else {}),
        **(confs or {}),
    }
    cmd = [str(home / "bin" / "spark-submit"), "--master", cluster.master_url]
    if not use_packages:
        cmd += ["--jars", ",".join(cached_jars())]
    for key, value in all_confs.items():
        cmd += ["--conf", f"{key}={value}"]
    if py_files:
        cmd += ["--py-files", ",".join(str(p) for p in py_files)]
    return cmd + [str(script), *args]


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("with-cluster", help="start a cluster, run a command, stop the cluster")
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--cores", type=int, default=1)
    run.add_argument("--memory", default="2g")
    run.add_argument("--isolate", action="append", default=[], help="folder hidden from the last worker")
    run.add_argument("--log-dir", type=Path, default=None)
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("give a command after --")
    with spark_cluster(
        workers=args.workers,
        cores_per_worker=args.cores,
        memory_per_worker=args.memory,
        isolate=args.isolate,
        log_dir=args.log_dir,
    ) as cluster:
        note = (
            f", {cluster.isolated_worker} isolated from {cluster.isolated_paths}"
            if cluster.isolated_worker
            else (f", no isolated worker: {cluster.isolation_skipped}" if cluster.isolation_skipped else "")
        )
        print(
            f"spark_cluster: {cluster.master_url} (UI {cluster.ui_url}, pids {cluster.pids}, "
            f"started in {cluster.started_in_s:.1f} s, logs {cluster.log_dir}{note})",
            file=sys.stderr,
            flush=True,
        )
        env = {**os.environ, "SMAR_SPARK_MASTER": cluster.master_url}
        return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(_main())

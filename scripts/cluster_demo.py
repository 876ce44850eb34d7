"""`make cluster-demo`: the whole tiny pipeline on a Spark standalone cluster, checked against the
embedded engine.

1. An S3-compatible server on loopback (moto, `tests/integration/servers.py`) holds the
   warehouse, the artifacts and the reports: `s3://lake/cluster/...`.
2. A standalone master and two workers on 127.0.0.1 (`tests/integration/spark_cluster.py`); as
   root, the second worker runs in its own mount namespace with a tmpfs over the checkout's `lib/`
   (and the folder the venv's editable install points at) and this run's local folders, so its
   executors see nothing of the driver's disk: `smar` reaches them only through `--py-files`.
3. Every job of the pipeline is one `spark-submit --master spark://... --packages ...
   --py-files dist/smar-0.1.0.zip jobs/<job>.py ...` (`PIPELINE`): ingest three
   days, train the single-modal rankers, score the last day, build, export, simulate and import
   the annotations, the annotation cost, train the SMAR reranker, replay it. The jobs run under
   `--engine cluster` (classic Spark 4.2 + delta-spark), exactly as on YARN or Kubernetes.
4. The same commands run on the embedded engine into `s3://lake/embedded/...`, and every table
   is compared row by row (`compare_tables`): audit times and the run's own root aside, they must
   be equal.

    python scripts/cluster_demo.py [--size tiny] [--ds 2026-11-01] [--driver-memory 1g]

Standard library on the host side; it needs `bash scripts/moto_env.sh`, `bash
scripts/spark_jars.sh` and `bash scripts/package.sh --wheel-only` first (the Make target runs them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.integration import servers, spark_cluster  # noqa: E402

# The wheel under its .zip name (scripts/package.sh): PySpark's executors put only .zip/.egg/.jar
# files of --py-files on their Python path; with the .whl the scoring UDF failed on the isolated
# worker with "No module named 'smar.single_modal'" (measured).
WHEEL = REPO_ROOT / "dist" / "smar-0.1.0.zip"
JOBS = REPO_ROOT / "jobs"
# Columns that differ between any two runs: when a row was written, and which code wrote it.
AUDIT_COLUMNS = {"created_at", "ingested_at", "completed_at", "rejected_at", "annotated_at", "git_commit"}
TIERS = ("embedded", "cluster")


def training_days(ds: str, count: int = 3) -> list[str]:
    last = date.fromisoformat(ds)
    return [(last - timedelta(days=offset)).isoformat() for offset in range(count - 1, -1, -1)]


@dataclass(frozen=True)
class Step:
    """One job: its `jobs/*.py` entry point, the same `smar` command, and its arguments."""

    job: str
    command: str
    args: tuple[str, ...]


def pipeline(ds: str, size: str, reports: str, *, mode: str = "jobs") -> list[Step]:
    """The tiny pipeline as jobs, in order (what `smar demo` does, one command per job; the
    annotation round trip exports the day's tasks into one folder, as the Airflow DAGs do).
    `mode="single"`: the whole `smar demo` as one job (one spark-submit of jobs/demo.py)."""
    if mode == "single":
        return [Step("demo", "demo", ("--size", size, "--ds", ds))]
    days = training_days(ds)
    export = f"{reports}/annotation/{ds}/all-ball-rall"
    steps = [Step("ingest", "ingest", ("--ds", day, "--source", "generator", "--size", size)) for day in days]
    steps += [
        Step("train_single_modal", "train-single-modal", tuple(part for day in days for part in ("--ds", day))),
        Step("score_single_modal", "score", ("--ds", ds)),
        Step("build_annotation_tasks", "build-tasks", ("--ds", ds, "--strategy", "top", "--budget", "0.2")),
        Step("export_annotation_tasks", "export-tasks", ("--ds", ds)),
        Step(
            "simulate_annotators",
            "simulate-annotators",
            ("--ds", ds, "--tasks-file", f"{export}/tasks.json", "--noise", "0.1", "--disagreement", "0.1"),
        ),
        Step("ingest_page_labels", "import-labels", ("--ds", ds, "--path", f"{export}/annotations_simulated.json")),
        Step("annotation_cost", "annotation-cost", ("--ds", ds)),
        Step("train_page_reranker", "train-reranker", ("--ds-start", ds, "--method", "smar_pairwise")),
        Step("replay_evaluate", "replay", ("--candidate", "run:{run_id}", "--control", "production", "--ds-start", ds)),
    ]
    return steps


@dataclass
class TierRun:
    """One tier's locations and what each job took."""

    name: str
    root: str  # s3://lake/<name>
    seconds: dict[str, float] = field(default_factory=dict)
    peak_driver_rss_mib: dict[str, float] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            "SMAR_WAREHOUSE": f"{self.root}/warehouse",
            "SMAR_ARTIFACTS": f"{self.root}/artifacts",
            "SMAR_REPORTS": f"{self.root}/reports",
        }


def latest_run_id(env: Mapping[str, str], python: Path) -> str:
    """The reranker run the tier registered (read with delta-rs, as the DAG's `trained_run` does)."""
    code = (
        "from smar.config import read_settings\nfrom smar.lake import read_delta\n"
        "rows = read_delta('gold.reranker_runs', settings=read_settings()).to_pylist()\n"
        "print(max(rows, key=lambda r: r['created_at'])['run_id'])"
    )
    done = subprocess.run([str(python), "-c", code], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"could not read the registered run: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def cluster_confs(storage_confs: Mapping[str, str], *, driver_memory: str, extra: Mapping[str, str]) -> dict[str, str]:
    return spark_cluster.application_confs(
        storage_confs,
        **{"spark.driver.memory": driver_memory, "spark.sql.execution.arrow.pyspark.enabled": "true", **extra},
    )


#: Builds the spark-submit command line of one step (its arguments given) on the local cluster.
Submitter = Callable[[Step, list[str]], list[str]]


@contextmanager
def local_cluster(
    work: Path, python: Path, *, workers: int, storage_confs: Mapping[str, str], driver_memory: str,
    extra_confs: Mapping[str, str] | None = None,
) -> Iterator[tuple[spark_cluster.SparkCluster, Submitter]]:  # fmt: skip
    """A standalone master and `workers` one-core workers on 127.0.0.1 (the last one isolated from
    this checkout's `lib/`, the venv's own `smar` and `work` when root), and the submitter that runs
    a step's `jobs/<job>.py` there from the wheel under `--engine cluster`; stopped on exit."""
    isolate = sorted({str(REPO_ROOT / "lib"), str(work), *_editable_roots(python)})
    with spark_cluster.spark_cluster(
        workers=workers, cores_per_worker=1, memory_per_worker="1536m", isolate=isolate,
        log_dir=Path(tempfile.mkdtemp(prefix="smar-cluster-")), env={"PYTHONPATH": ""},
    ) as cluster:  # fmt: skip
        # One core per worker: an application asking for more would wait for cores that never come
        # (spark.scheduler.minRegisteredResourcesRatio is 1 on the local cluster).
        confs = cluster_confs(
            storage_confs, driver_memory=driver_memory, extra={"spark.cores.max": str(workers), **(extra_confs or {})}
        )

        def submit(step: Step, step_args: list[str]) -> list[str]:
            return spark_cluster.submit_command(
                cluster, JOBS / f"{step.job}.py", [*step_args, "--engine", "cluster"], confs=confs, py_files=[WHEEL],
                python=python,
            )  # fmt: skip

        yield cluster, submit


def run_tier(
    tier: TierRun,
    steps: Sequence[Step],
    *,
    base_env: Mapping[str, str],
    work: Path,
    submit: Submitter | None,
    python: Path,
    timeout: float,
    say: Callable[[str], None],
) -> None:
    """Every step on one tier: `submit` builds the spark-submit command line, or (None) the step
    runs as `smar <command> --engine embedded`."""
    env = {**base_env, **tier.env}
    log = work / f"{tier.name}.log"
    run_id = ""
    for step in steps:
        args = [arg.replace("{run_id}", run_id) for arg in step.args]
        if submit is None:
            cmd = [str(python), "-m", "smar.cli", step.command, *args, "--engine", "embedded"]
        else:
            cmd = submit(step, args)
        started = time.monotonic()
        code, peak = spark_cluster.run_measured(cmd, env=env, cwd=work, log=log, timeout=timeout)
        seconds = time.monotonic() - started
        tier.seconds[step.job + (f"[{args[1]}]" if step.job == "ingest" else "")] = round(seconds, 1)
        tier.peak_driver_rss_mib[step.job] = max(tier.peak_driver_rss_mib.get(step.job, 0.0), round(peak))
        say(f"{tier.name}: {step.job} {' '.join(args[:2])} -> exit {code} in {seconds:.1f} s")
        if code != 0:
            tail = log.read_text(errors="replace")[-6000:]
            raise RuntimeError(f"{tier.name}: {step.job} exited {code}; log {log}:\n{tail}")
        if step.job == "train_page_reranker":
            run_id = latest_run_id(env, python)


# ---- comparing the two tiers' tables --------------------------------------------------------------


def _canonical(value: object, roots: Sequence[str]) -> object:
    if isinstance(value, str):
        for root in roots:
            value = value.replace(root, "<root>")
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(item, roots) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((key, _canonical(item, roots)) for key, item in value.items()))
    return value


def _close(left: object, right: object, tolerance: float) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return left == right or abs(left - right) <= tolerance * max(1.0, abs(left), abs(right))
    if isinstance(left, tuple) and isinstance(right, tuple):
        return len(left) == len(right) and all(_close(a, b, tolerance) for a, b in zip(left, right))
    return left == right


def compare_tables(roots: Mapping[str, str], *, tolerance: float = 1e-6) -> dict[str, dict[str, object]]:
    """Every contract table of both tiers, row by row after sorting: audit columns dropped, each
    run's root replaced by `<root>`, floats equal within `tolerance` (relative). Returns per table
    the row counts and the columns that differ (empty: equal)."""
    from smar.config import SmarSettings
    from smar.contracts import all_tables
    from smar.lake import read_delta

    report: dict[str, dict[str, object]] = {}
    settings = {name: SmarSettings(warehouse=f"{root}/warehouse") for name, root in roots.items()}
    root_values = sorted(roots.values(), key=len, reverse=True)
    for table in all_tables():
        rows: dict[str, list[tuple]] = {}
        names: dict[str, set[str]] = {}
        data_of = {}
        for name in roots:
            try:
                data_of[name] = read_delta(table, settings=settings[name])
            except Exception:
                data_of[name] = None
            names[name] = set() if data_of[name] is None else set(data_of[name].column_names) - AUDIT_COLUMNS
        # The same columns, by name and in one order for both tiers: the engines may store a table's
        # columns in another order (a partition column last, say).
        columns = sorted(set.intersection(*names.values())) if all(names.values()) else []
        for name, data in data_of.items():
            rows[name] = (
                []
                if data is None
                else sorted(
                    (tuple(_canonical(row[column], root_values) for column in columns) for row in data.to_pylist()),
                    key=repr,
                )
            )
        left, right = (rows[name] for name in roots)
        differing = sorted(
            {
                columns[index]
                for a, b in zip(left, right)
                for index, (x, y) in enumerate(zip(a, b))
                if not _close(x, y, tolerance)
            }
            | (set.union(*names.values()) - set(columns) if all(names.values()) else set())
        )
        report[table] = {"rows": [len(left), len(right)], "differing_columns": differing}
    return report


def tables_equal(report: Mapping[str, Mapping[str, object]]) -> bool:
    return all(
        entry["rows"][0] == entry["rows"][1] and not entry["differing_columns"]  # type: ignore[index]
        for entry in report.values()
    )


# ---- the whole demo -----------------------------------------------------------------------------


def stderr_logger(prefix: str) -> Callable[[str], None]:
    """A progress printer: `<prefix>: message` on stderr, flushed (stdout keeps the result)."""

    def say(message: str) -> None:
        print(f"{prefix}: {message}", file=sys.stderr, flush=True)

    return say


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "demo"])
    parser.add_argument("--ds", default="2026-11-01")
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--skip-embedded", action="store_true", help="only the cluster tier (no comparison)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--mode", default="jobs", choices=["jobs", "single"],
        help="jobs: one spark-submit per job (default); single: the whole demo in one spark-submit",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per job")
    parser.add_argument("--result", type=Path, default=None, help="write timings and the comparison as JSON")
    args = parser.parse_args(argv)
    say = stderr_logger("cluster_demo")
    if not WHEEL.is_file():
        say(f"{WHEEL} is missing; run: bash scripts/package.sh --wheel-only")
        return 2
    work = Path(tempfile.mkdtemp(prefix="smar-cluster-demo-"))
    python = spark_cluster.project_python()
    result = run_demo(
        work, python, size=args.size, ds=args.ds, driver_memory=args.driver_memory, workers=args.workers,
        embedded=not args.skip_embedded, timeout=args.timeout, mode=args.mode, say=say,
    )  # fmt: skip
    if args.result:
        args.result.write_text(json.dumps(result, indent=1, sort_keys=True))
    print(json.dumps({key: result[key] for key in ("seconds", "tables_equal")}, indent=1, sort_keys=True))
    return 0 if result["tables_equal"] in (True, None) else 1


def run_demo(
    work: Path,
    python: Path,
    *,
    size: str,
    ds: str,
    driver_memory: str,
    workers: int = 2,
    embedded: bool = True,
    timeout: float = 1800.0,
    extra_confs: Mapping[str, str] | None = None,
    mode: str = "jobs",
    say: Callable[[str], None] = print,
) -> dict[str, object]:
    """Start the S3 server and the cluster, run the pipeline on both tiers, compare, stop everything."""
    started = time.monotonic()
    timings: dict[str, object] = {}
    with servers.s3_server("lake", log_dir=work / "moto") as s3:
        timings["moto_start_s"] = round(s3.started_in_s, 2)
        base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # smar from the wheel only
        base_env.update(s3.env)
        base_env["RUST_LOG"] = "error"
        with servers.environ(s3.env):
            from smar.storage.settings import storage_settings_from_env

            storage_confs = storage_settings_from_env().spark_hadoop_confs()
        tiers = {"cluster": TierRun("cluster", s3.uri("cluster"))}
        if embedded:
            tiers["embedded"] = TierRun("embedded", s3.uri("embedded"))
        with local_cluster(
            work, python, workers=workers, storage_confs=storage_confs, driver_memory=driver_memory,
            extra_confs=extra_confs,
        ) as (cluster, submit):  # fmt: skip
            timings["cluster_start_s"] = round(cluster.started_in_s, 1)
            timings["isolated_worker"] = cluster.isolated_worker or f"none: {cluster.isolation_skipped}"
            say(
                f"cluster {cluster.master_url} up in {cluster.started_in_s:.1f} s; isolated: {timings['isolated_worker']}"
            )
            steps = pipeline(ds, size, f"{tiers['cluster'].root}/reports", mode=mode)
            run_tier(tiers["cluster"], steps, base_env=base_env, work=work, submit=submit, python=python,
                     timeout=timeout, say=say)  # fmt: skip
        if embedded:
            embedded_env = {**base_env, "PYTHONPATH": str(REPO_ROOT / "lib")}
            steps = pipeline(ds, size, f"{tiers['embedded'].root}/reports", mode=mode)
            run_tier(tiers["embedded"], steps, base_env=embedded_env, work=work, submit=None, python=python,
                     timeout=timeout, say=say)  # fmt: skip
            with servers.environ(s3.env):
                report = compare_tables({name: tier.root for name, tier in tiers.items()})
            equal = tables_equal(report)
            for table, entry in report.items():
                say(f"{table}: rows {entry['rows']} differing {entry['differing_columns'] or '-'}")
        else:
            report, equal = {}, None
    timings["total_s"] = round(time.monotonic() - started, 1)
    return {
        "seconds": {**timings, **{name: tier.seconds for name, tier in tiers.items()}},
        "peak_driver_rss_mib": {name: tier.peak_driver_rss_mib for name, tier in tiers.items()},
        "tables": report,
        "tables_equal": equal,
        "mode": mode,
        "size": size,
        "work": str(work),
    }


def _editable_roots(python: Path) -> list[str]:
    """Where the venv's own `smar` lives (an editable install points into a checkout's lib/):
    hidden from the isolated worker, so its executors can only import the shipped wheel."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(python), "-c", "import os, smar; print(os.path.dirname(os.path.dirname(smar.__file__)))"],
        capture_output=True, text=True, env=env, cwd="/",
    )  # fmt: skip
    root = done.stdout.strip()
    return [root] if done.returncode == 0 and root and Path(root).is_dir() else []


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the same day's stages on the embedded engine and on a local standalone cluster with
1 and 2 workers, at two data sizes (generator presets `tiny` and `demo`, 42x the impressions).

Every stage is one job, as Airflow runs it: `smar <command> --engine embedded` for the embedded
engine, `spark-submit --master spark://127.0.0.1:... --packages ... --py-files smar.zip
jobs/<job>.py --engine cluster` on the cluster (classic Spark + delta-spark, the warehouse on
the loopback S3 server, the second worker in its own mount namespace as root, the driver at
`spark.driver.memory=1g`). So every figure includes what a user pays per job: the process
start, the JVM and the jar resolution, which dominates a tiny day.

Stages: ingest (generator), train-single-modal, score, build-tasks, for one day. Per stage it
prints seconds, impressions/s, the peak RSS of the job's process tree on the host (driver JVM +
Python driver; executors are the workers' children, not counted), and per tier the ratio

    (seconds at the large size / seconds at the small size) / (impressions ratio)

whose goal is <= 1.1 (10x the data in at most 11x the time), and the marginal rate
(extra impressions / extra seconds), which separates the per-row cost from the job's fixed
start-up (that dominates a tiny day). The tiers and sizes run in
alternating order over `--repeats`; medians are reported with min and max. One RESULT line per
run, appended to benchmarks/results/cluster_scale.jsonl.

    make bench-cluster     # = the three setup scripts, then:
    .venv/bin/python benchmarks/bench_cluster_scale.py [--repeats 1] [--sizes tiny,demo] [--tiers embedded,cluster1,cluster2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import record_result  # benchmarks/ is on sys.path when run as a script

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

import cluster_demo  # noqa: E402
from cluster_demo import WHEEL, Step, TierRun, run_tier  # noqa: E402

from tests.integration import servers, spark_cluster  # noqa: E402

DS = "2026-11-01"
SEED = 20251016
STAGES = ("ingest", "train_single_modal", "score_single_modal", "build_annotation_tasks")
TIERS = {"embedded": 0, "cluster1": 1, "cluster2": 2}  # name -> standalone workers (0: embedded engine)


def steps(ds: str, size: str) -> list[Step]:
    return [
        Step("ingest", "ingest", ("--ds", ds, "--source", "generator", "--size", size, "--seed", str(SEED))),
        Step("train_single_modal", "train-single-modal", ("--ds", ds, "--epochs", "2", "--seed", str(SEED))),
        Step("score_single_modal", "score", ("--ds", ds)),
        Step("build_annotation_tasks", "build-tasks", ("--ds", ds, "--strategy", "top", "--budget", "0.2")),
    ]


def impressions(root: str, python: Path, env: dict[str, str]) -> int:
    """Rows of bronze.search_logs in the tier's warehouse (delta-rs)."""
    code = (
        "from smar.config import read_settings\nfrom smar.lake import read_delta\n"
        "print(read_delta('bronze.search_logs', settings=read_settings()).num_rows)"
    )
    done = subprocess.run(
        [str(python), "-c", code], env={**env, "SMAR_WAREHOUSE": f"{root}/warehouse"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return int(done.stdout.strip().splitlines()[-1])


def run_one(tier: str, size: str, repeat: int, *, s3, storage_confs, base_env, python, work: Path, say) -> dict:
    """One (tier, size): a fresh warehouse prefix, the stages in order; seconds and peak RSS per stage."""
    run = TierRun(f"{tier}-{size}-r{repeat}", s3.uri(f"scale/{tier}/{size}/r{repeat}"))
    workers = TIERS[tier]
    if workers == 0:
        env = {**base_env, "PYTHONPATH": str(REPO_ROOT / "lib")}
        run_tier(run, steps(DS, size), base_env=env, work=work, submit=None, python=python, timeout=3600, say=say)
        rows = impressions(run.root, python, env)
        return {"seconds": run.seconds, "peak_rss_mib": run.peak_driver_rss_mib, "impressions": rows}
    with cluster_demo.local_cluster(work, python, workers=workers, storage_confs=storage_confs, driver_memory="1g") as (
        cluster,
        submit,
    ):
        run_tier(
            run, steps(DS, size), base_env=base_env, work=work, submit=submit, python=python, timeout=3600, say=say
        )
        isolated = cluster.isolated_worker or f"none: {cluster.isolation_skipped}"
    rows = impressions(run.root, python, base_env)
    return {"seconds": run.seconds, "peak_rss_mib": run.peak_driver_rss_mib, "impressions": rows, "isolated": isolated}


def stage_seconds(seconds: dict[str, float], stage: str) -> float:
    return next(value for key, value in seconds.items() if key.split("[")[0] == stage)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sizes", default="tiny,demo")
    parser.add_argument("--tiers", default=",".join(TIERS))
    parser.add_argument("--no-append", action="store_true", help="print the RESULT line only")
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    tiers = args.tiers.split(",")
    say = cluster_demo.stderr_logger("bench_cluster_scale")
    if not WHEEL.is_file():
        say(f"{WHEEL} is missing; run: bash scripts/package.sh --wheel-only")
        return 2
    work = Path(tempfile.mkdtemp(prefix="smar-scale-"))
    python = spark_cluster.project_python()
    runs: dict[tuple[str, str], list[dict]] = {}
    started = time.monotonic()
    with servers.s3_server("lake", log_dir=work / "moto") as s3:
        base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        base_env.update({**s3.env, "RUST_LOG": "error"})
        with servers.environ(s3.env):
            from smar.storage.settings import storage_settings_from_env

            storage_confs = storage_settings_from_env().spark_hadoop_confs()
        for repeat in range(args.repeats):
            # Alternate the order every repeat, so drift on a noisy machine hits both sides.
            order = [(tier, size) for tier in tiers for size in sizes]
            for tier, size in order if repeat % 2 == 0 else list(reversed(order)):
                say(f"repeat {repeat}: {tier} {size}")
                result = run_one(
                    tier, size, repeat, s3=s3, storage_confs=storage_confs, base_env=base_env,
                    python=python, work=work, say=say,
                )  # fmt: skip
                runs.setdefault((tier, size), []).append(result)

    table: dict[str, dict] = {}
    for (tier, size), results in runs.items():
        rows = results[0]["impressions"]
        per_stage = {}
        for stage in STAGES:
            values = [stage_seconds(result["seconds"], stage) for result in results]
            median = statistics.median(values)
            per_stage[stage] = {
                "seconds_median": round(median, 1), "seconds_min": min(values), "seconds_max": max(values),
                "impressions_per_s": round(rows / median, 1) if median else None,
                "peak_rss_mib": max(result["peak_rss_mib"].get(stage, 0) for result in results),
            }  # fmt: skip
        table[f"{tier}/{size}"] = {"impressions": rows, "stages": per_stage, "isolated": results[0].get("isolated")}
    ratios: dict[str, dict] = {}
    small, large = sizes[0], sizes[-1]
    for tier in tiers:
        if f"{tier}/{small}" in table and f"{tier}/{large}" in table and small != large:
            data_ratio = table[f"{tier}/{large}"]["impressions"] / table[f"{tier}/{small}"]["impressions"]
            ratios[tier] = {"data_ratio": round(data_ratio, 2)}
            for stage in STAGES:
                time_ratio = (
                    table[f"{tier}/{large}"]["stages"][stage]["seconds_median"]
                    / table[f"{tier}/{small}"]["stages"][stage]["seconds_median"]
                )
                extra_seconds = (
                    table[f"{tier}/{large}"]["stages"][stage]["seconds_median"]
                    - table[f"{tier}/{small}"]["stages"][stage]["seconds_median"]
                )
                extra_rows = table[f"{tier}/{large}"]["impressions"] - table[f"{tier}/{small}"]["impressions"]
                ratios[tier][stage] = {
                    "time_ratio": round(time_ratio, 2),
                    "time_per_data_ratio": round(time_ratio / data_ratio, 3),
                    # What one more impression costs once the job's fixed start-up is paid.
                    "marginal_impressions_per_s": round(extra_rows / extra_seconds, 1) if extra_seconds > 0 else None,
                }
    record_result(
        {
            "benchmark": "cluster_scale",
            "ds": DS,
            "repeats": args.repeats,
            "sizes": sizes,
            "tiers": tiers,
            "driver_memory": "1g",
            "table": table,
            "ratios": ratios,
            "total_s": round(time.monotonic() - started, 1),
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "git_commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT
            ).stdout.strip(),
        },  # fmt: skip
        "cluster_scale",
        append=not args.no_append,
    )
    print(json.dumps({"table": table, "ratios": ratios}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

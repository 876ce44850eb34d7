"""Click estimators of one replay on a warehouse: the truth (oracle_clicks) next to PBM IPS, the
self-normalised PBM IPS, the independent-item DR and the direct method alone.

    .venv/bin/smar demo --warehouse /tmp/replay-wh
    PYTHONPATH=lib .venv/bin/python benchmarks/bench_replay_clicks.py --warehouse /tmp/replay-wh \\
        --candidate run:<run_id> --ds-start 2026-10-30 --ds-end 2026-11-01

Runs the replay job itself (`replay_evaluate`, run id `bench-clicks-<days>`, with the diagnostic
`clicks_dm` rows switched on), then prints the click rows, every gate, the examination curve, and
the denominator the old SNIPS divided by (mean gamma_t / gamma_p of the candidate, assumed 1).
Prints one RESULT line (appended to benchmarks/results/replay_clicks.jsonl).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _results import record_result

from smar.config import SmarSettings
from smar.engine import spark_session
from smar.lake import Lakehouse
from smar.replay.clicks import ClickConfig
from smar.replay.estimators import legacy_snips_normaliser
from smar.replay.inputs import build_replay_inputs
from smar.replay.jobs import ReplayConfig, estimate_clicks, read_replay_metrics, replay_evaluate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--candidate", required=True, help="run:<run_id>")
    parser.add_argument("--ds-start", required=True)
    parser.add_argument("--ds-end", default=None)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    ds_end = args.ds_end or args.ds_start
    started = time.perf_counter()
    config = ReplayConfig(clicks=ClickConfig(include_direct_method=True))
    settings = SmarSettings(warehouse=args.warehouse, reports=args.warehouse.parent / "reports")
    with spark_session("embedded", app_name="bench-replay-clicks") as spark:
        lake = Lakehouse(spark, settings)
        run_id = f"bench-clicks-{args.ds_start}-{ds_end}"
        summary = replay_evaluate(spark, lake, control="production", candidate=args.candidate,
                                  ds_start=args.ds_start, ds_end=ds_end, run_id=run_id, config=config)  # fmt: skip
        elapsed = time.perf_counter() - started
        rows = read_replay_metrics(lake, run_id)
        inputs = build_replay_inputs(spark, lake, control="production", candidate=args.candidate,
                                     ds_start=args.ds_start, ds_end=ds_end, config=config.metrics)  # fmt: skip
        clicks = estimate_clicks(lake, inputs, ds_start=args.ds_start, ds_end=ds_end, config=config)
    clicks_rows = rows[rows["metric"] == "clicks"].sort_values(["k", "label_source"])
    pd.set_option("display.width", 220)
    columns = ["k", "label_source", "control_value", "candidate_value", "delta", "ci_low", "ci_high", "mde", "reliable"]
    print(f"replay {run_id}: {summary.n_pages} pages of {summary.n_queries} queries, {elapsed:.1f} s")
    print(clicks_rows[columns].round(4).to_string(index=False))
    for gate in clicks.replay.gates:
        print(("PASS " if gate.passed else "FAIL ") + gate.reason)
    legacy = None
    if clicks.curve is not None:
        curve = clicks.curve
        print(f"curve {clicks.version}: eta {curve.exponent} {curve.exponent_ci}, gof p {curve.gof_p_value:.3f}")
        print("gamma 1-10:", np.round(curve.examination[:10], 3).tolist())
        print(
            "band      :", list(zip(np.round(curve.ci_low[:10], 3).tolist(), np.round(curve.ci_high[:10], 3).tolist()))
        )
        impressions = inputs.impressions
        legacy = legacy_snips_normaliser(impressions["position"], impressions["candidate_rank"], curve.examination)
        print(f"old SNIPS denominator mean(gamma_t / gamma_p) of the candidate, with this curve: {legacy:.3f} (not 1)")
    record_result(
        {
            "benchmark": "replay_clicks",
            "warehouse": str(args.warehouse),
            "candidate": args.candidate,
            "ds_start": args.ds_start,
            "ds_end": ds_end,
            "n_pages": summary.n_pages,
            "n_queries": summary.n_queries,
            "curve_version": clicks.version,
            "exponent": None if clicks.curve is None else clicks.curve.exponent,
            "rows": clicks_rows[columns].replace({np.nan: None}).to_dict(orient="records"),
            "legacy_snips_denominator": legacy,
            "seconds": round(elapsed, 1),
        },  # fmt: skip
        "replay_clicks",
        append=not args.no_append,
    )


if __name__ == "__main__":
    main()

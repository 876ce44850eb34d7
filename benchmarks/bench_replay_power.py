"""How many demo days of replay detect a true +0.3 clicks@5? Measured over independent windows.

    PYTHONPATH=lib .venv/bin/python benchmarks/bench_replay_power.py [--repeats 8] [--days 1 2 3 5 7]

For each window length d, `--repeats` disjoint windows of d consecutive demo-size days are
generated (frozen generator, its own clicks); the examination curve is fitted on each window's
exploration pages (every split) and the test split is replayed: a synthetic candidate
(`simulation.noisy_oracle_candidate`, strength 2: true delta clicks@5 about +0.3 per page)
against the logged order. Per d: the mean true delta, the mean MDE (80% power, 5% two-sided),
the detection rate (interval entirely above 0) and the coverage of the truth.
Prints one RESULT line (appended to benchmarks/results/replay_power.jsonl).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _results import record_result

from smar.metrics.bootstrap import BootstrapConfig
from smar.replay.clicks import ClickConfig
from smar.replay.power import minimum_detectable_effect, units_needed
from smar.replay.simulation import SimulatedReplay, noisy_oracle_candidate, replay_draw, simulate_logs
from smar.vocabulary import CLICKS_PBM_IPS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--days", type=int, nargs="+", default=[1, 2, 3, 5, 7])
    parser.add_argument("--strength", type=float, default=2.0)
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    replay = SimulatedReplay(cutoffs=(5,), bootstrap=BootstrapConfig(n_resamples=args.n_resamples),
                             clicks=ClickConfig(propensity_bootstrap=args.n_resamples))  # fmt: skip
    first, offset, records = date(2026, 1, 1), 0, []
    for n_days in args.days:
        for repeat in range(args.repeats):
            days = [(first + timedelta(days=offset + i)).isoformat() for i in range(n_days)]
            offset += n_days
            sim = simulate_logs("demo", days)
            candidate = noisy_oracle_candidate(sim, strength=args.strength)
            logged_clicks = sim.logs["clicked"].to_numpy()
            for result in replay_draw(sim, logged_clicks, candidate, replay=replay):
                mde = minimum_detectable_effect(result.ci_low, result.ci_high)
                records.append({"days": n_days, "repeat": repeat, **result.__dict__, "mde": mde})
        print(f"{n_days} days done ({time.perf_counter() - started:.0f} s)", flush=True)
    frame = pd.DataFrame(records)
    frame["detected"] = frame["ci_low"] > 0
    frame["covered"] = (frame["ci_low"] <= frame["true_delta"]) & (frame["true_delta"] <= frame["ci_high"])
    summary = frame.groupby(["label_source", "days"]).agg(
        truth=("true_delta", "mean"), delta=("delta", "mean"), mde=("mde", "mean"), detected=("detected", "mean"),
        covered=("covered", "mean"), reliable=("reliable", "mean"),
    ).reset_index()  # fmt: skip
    pd.set_option("display.width", 200)
    print(summary.round(3).to_string(index=False))
    ips = summary[summary["label_source"] == CLICKS_PBM_IPS].set_index("days")
    one_day = float(ips["mde"].iloc[0])
    extrapolated = units_needed(one_day, int(ips.index[0]), 0.3)
    detected = [int(d) for d, row in ips.iterrows() if row["detected"] == 1.0]
    print(f"IPS: MDE {one_day:.3f} at {ips.index[0]} day(s) -> {extrapolated} days by MDE ~ 1/sqrt(days); first "
          f"window length detected in every repeat: {detected[0] if detected else 'none'} days; "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    record_result(
        {"benchmark": "replay_power", "strength": args.strength, "repeats": args.repeats,
         "summary": summary.replace({np.nan: None}).to_dict(orient="records"),
         "days_needed_extrapolated": extrapolated, "days_detected_every_repeat": detected[0] if detected else None},
        "replay_power", append=not args.no_append,
    )  # fmt: skip


if __name__ == "__main__":
    main()

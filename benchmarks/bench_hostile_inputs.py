"""Hostile but realistic input, run against the `smar` command line: malformed and mixed files,
type tricks, non-finite numbers, byte order marks, bad days and run ids, stale and repeated label
exports, a kill in the middle of a write, concurrent ingests and a rerun of the whole demo.

Each case prints one line (PASS/FAIL, what was expected, what happened, rows lost). The result
line counts the cases that passed and the input rows that were lost or silently changed (landed
but neither accepted as they were nor refused). The code under test is the checkout given by
`--code` (default: this one), so the same cases can be run against an older commit:

    .venv/bin/python benchmarks/bench_hostile_inputs.py
    git worktree add /tmp/old <commit> && .venv/bin/python benchmarks/bench_hostile_inputs.py --code /tmp/old
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from smar.lake import open_delta_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import record_result

DS = "2026-11-01"
REPOSITORY = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    passed: bool
    detail: str
    rows_lost: int = 0


class Harness:
    def __init__(self, code: Path, root: Path) -> None:
        self.code = code
        self.root = root

    def env(self, warehouse: Path) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": f"{self.code / 'lib'}:{self.code}",
            "SMAR_WAREHOUSE": str(warehouse),
            "SMAR_ARTIFACTS": str(warehouse.parent / "artifacts"),
            "SMAR_REPORTS": str(warehouse.parent / "reports"),
            "RUST_LOG": "error",
        }

    def case_dir(self, name: str) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True)
        return folder

    def smar(self, folder: Path, *arguments: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smar.cli", *arguments],
            capture_output=True, text=True, timeout=timeout, cwd=folder, env=self.env(folder / "warehouse"),
        )  # fmt: skip

    def python(self, folder: Path, script: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script)],
            capture_output=True, text=True, timeout=timeout, cwd=folder, env=self.env(folder / "warehouse"),
        )  # fmt: skip


def impression(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "ds": DS, "request_id": "r1", "query_id": "q1", "query_text": "tea", "user_id": "u1",
        "request_ts": "2026-11-01T10:00:00Z", "item_id": "w1", "modality": "web", "position": 1,
        "production_score": 12.5, "clicked": 1, "dwell_seconds": 30.0, "source": "file",
    }  # fmt: skip
    row.update(overrides)
    return row


def jsonl(path: Path, rows: list[dict[str, object]], prefix: bytes = b"") -> Path:
    path.write_bytes(prefix + b"\n".join(json.dumps(row).encode() for row in rows) + b"\n")
    return path


def rows_of(warehouse: Path, table: str, ds: str = DS) -> list[dict[str, object]]:
    path = warehouse / table.replace(".", "/")
    if not (path / "_delta_log").is_dir():
        return []
    return open_delta_table(path.as_uri()).to_pyarrow_table(filters=[("ds", "=", ds)]).to_pylist()


def ingest_files(
    h: Harness, name: str, write: Callable[[Path], None], *extra: str
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    folder = h.case_dir(name)
    landing = folder / "landing"
    landing.mkdir()
    write(landing)
    done = h.smar(folder, "ingest", "--ds", DS, "--source", "files", "--path", str(landing), "--skip-quality",
                  "--max-reject-fraction", "1", *extra)  # fmt: skip
    return folder / "warehouse", done


def accounted(warehouse: Path, landed: int, table: str = "bronze.search_logs") -> tuple[int, int, int]:
    accepted = len(rows_of(warehouse, table))
    rejected = len([row for row in rows_of(warehouse, "bronze.rejects") if row.get("target_table") == table])
    return accepted, rejected, landed - accepted - rejected


# -- the cases --------------------------------------------------------------------------------------


def two_parts_of_one_table(h: Harness) -> Outcome:
    def write(landing: Path) -> None:
        jsonl(landing / "search_logs.part0.jsonl", [impression(request_id=f"a{i}") for i in range(3)])
        jsonl(landing / "search_logs.part1.jsonl", [impression(request_id=f"b{i}") for i in range(2)])

    warehouse, done = ingest_files(h, "two_parts", write)
    accepted, rejected, lost = accounted(warehouse, 5)
    return Outcome(done.returncode == 0 and accepted == 5, f"exit {done.returncode}, accepted {accepted}/5", lost)


def jsonl_and_parquet_of_one_table(h: Harness) -> Outcome:
    def write(landing: Path) -> None:
        jsonl(landing / "search_logs.jsonl", [impression(request_id=f"a{i}") for i in range(3)])
        pq.write_table(pa.Table.from_pylist([impression(request_id="p0")]), landing / "search_logs.parquet")

    warehouse, done = ingest_files(h, "jsonl_and_parquet", write)
    accepted, rejected, lost = accounted(warehouse, 4)
    return Outcome(done.returncode == 0 and accepted == 4, f"exit {done.returncode}, accepted {accepted}/4", lost)


def unknown_file_name(h: Harness) -> Outcome:
    def write(landing: Path) -> None:
        jsonl(landing / "search_logs.jsonl", [impression()])
        jsonl(landing / "searchlogs.jsonl", [impression(request_id="r2")])

    warehouse, done = ingest_files(h, "unknown_name", write)
    ignored = 1 if done.returncode == 0 else 0
    return Outcome(done.returncode == 2, f"exit {done.returncode} (2 expected: a file matching no table)", ignored)


def same_day_through_two_sources(h: Harness) -> Outcome:
    folder = h.case_dir("two_sources")
    first = h.smar(folder, "ingest", "--ds", DS, "--size", "tiny", "--skip-quality")
    generated = rows_of(folder / "warehouse", "bronze.search_logs")
    landing = folder / "landing"
    landing.mkdir()
    again = [{**row, "source": "file", "request_ts": str(row["request_ts"])} for row in generated[:3]]
    jsonl(landing / "search_logs.jsonl", [*again, impression(request_id="brand-new")])
    h.smar(folder, "ingest", "--ds", DS, "--source", "files", "--path", str(landing), "--skip-quality",
           "--max-reject-fraction", "1")  # fmt: skip
    total = len(rows_of(folder / "warehouse", "bronze.search_logs"))
    doubled = total - (len(generated) + 1)
    ok = first.returncode == 0 and doubled == 0
    return Outcome(ok, f"{total} rows for {len(generated)} + 1 distinct impressions", max(doubled, 0))


def typed_value_case(name: str, table: str, row: dict[str, object], file_format: str) -> Callable[[Harness], Outcome]:
    def case(h: Harness) -> Outcome:
        def write(landing: Path) -> None:
            stem = table.split(".")[1]
            if file_format == "parquet":
                pq.write_table(pa.Table.from_pylist([row]), landing / f"{stem}.parquet")
            else:
                jsonl(landing / f"{stem}.jsonl", [row])

        warehouse, done = ingest_files(h, name, write)
        accepted, rejected, lost = accounted(warehouse, 1, table)
        changed = accepted  # the row is wrong on purpose: accepting it changes or keeps a bad value
        return Outcome(
            done.returncode == 0 and rejected == 1, f"accepted {accepted}, refused {rejected}", lost + changed
        )

    case.__name__ = name
    return case


def empty_key_and_one_parse_reason(h: Harness) -> Outcome:
    def write(landing: Path) -> None:
        lines = [json.dumps(impression(request_id="")).encode(), b'{"ds": "2026-11-01", "request_id": "cut']
        (landing / "search_logs.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    warehouse, done = ingest_files(h, "empty_key", write)
    accepted, rejected, lost = accounted(warehouse, 2)
    reasons = [str(row["reason"]) for row in rows_of(warehouse, "bronze.rejects")]
    parse = [reason for reason in reasons if reason.startswith("malformed JSON")]
    ok = accepted == 0 and rejected == 2 and len(parse) == 1 and ";" not in parse[0]
    return Outcome(ok, f"accepted {accepted}, refused {rejected}, parse reason {parse[:1]}", lost + accepted)


def jsonl_with_bom(h: Harness) -> Outcome:
    def write(landing: Path) -> None:
        jsonl(landing / "search_logs.jsonl", [impression(request_id=f"r{i}") for i in range(3)], prefix=b"\xef\xbb\xbf")

    warehouse, done = ingest_files(h, "jsonl_bom", write)
    accepted, rejected, lost = accounted(warehouse, 3)
    return Outcome(accepted == 3, f"accepted {accepted}/3, refused {rejected}", 3 - accepted)


def bad_edge(name: str, *arguments: str) -> Callable[[Harness], Outcome]:
    def case(h: Harness) -> Outcome:
        folder = h.case_dir(name)
        done = h.smar(folder, *arguments, timeout=300)
        one_line = len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        escaped = (folder.parent / "x").exists() or (folder / "warehouse" / "_landing" / ".." / ".." / "x").exists()
        ok = done.returncode == 2 and one_line and not escaped
        return Outcome(ok, f"exit {done.returncode}, {len(done.stderr.strip().splitlines())} stderr lines")

    case.__name__ = name
    return case


LABELS_SETUP = """
import sys
from smar.config import SmarSettings
from smar.engine import start_engine
from smar.lake import Lakehouse
from tests.fixtures_scores import write_standin_scores
try:
    from smar.ingest.jobs import run_ingest
except ImportError:
    from smar.pipeline import run_ingest
try:
    from smar.annotation.jobs import build_annotation_tasks, export_annotation_tasks
except ImportError:
    raise
engine = start_engine("embedded")
lake = Lakehouse(engine.spark, SmarSettings())
run_ingest(engine.spark, lake, ds="2026-11-01", source="generator", size="tiny", seed=5, run_quality_checks=False)
write_standin_scores(engine.spark, lake, "2026-11-01")
build_annotation_tasks(engine.spark, lake, ds="2026-11-01", strategy="top", budget=0.2, seed=1, eval_splits=())
out = export_annotation_tasks(engine.spark, lake, ds="2026-11-01", strategy="top")
print(out.tasks_json)
engine.stop()
"""


def labelled_day(h: Harness, name: str) -> tuple[Path, dict[str, object]]:
    folder = h.case_dir(name)
    done = h.python(folder, LABELS_SETUP)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    tasks_json = Path(done.stdout.strip().splitlines()[-1])
    return folder, json.loads(tasks_json.read_text())[0]


def export_with(task: dict[str, object], grade: int, updated_at: str) -> list[dict[str, object]]:
    item = task["data"]["items"][0]  # type: ignore[index]
    return [
        {
            **task,
            "annotations": [
                {
                    "completed_by": {"id": 1, "email": "ann@example.org"},
                    "updated_at": updated_at,
                    "was_cancelled": False,
                    "result": [
                        {"from_name": f"grade_{item['index']}", "to_name": f"item_{item['index']}",
                         "type": "choices", "value": {"choices": [str(grade)]}}
                    ],
                }
            ],
        }
    ]  # fmt: skip


def grades(folder: Path) -> list[int]:
    return [int(row["grade"]) for row in rows_of(folder / "warehouse", "silver.page_labels")]


def stale_export(h: Harness) -> Outcome:
    folder, task = labelled_day(h, "stale_export")
    (folder / "newer.json").write_text(json.dumps(export_with(task, 3, "2026-11-03T10:00:00Z")))
    (folder / "older.json").write_text(json.dumps(export_with(task, 1, "1970-01-01T00:00:00Z")))
    h.smar(folder, "import-labels", "--ds", DS, "--path", "newer.json")
    h.smar(folder, "import-labels", "--ds", DS, "--path", "older.json")
    stored = grades(folder)
    return Outcome(stored == [3], f"stored grades {stored} (3 expected: the newer grade)", 0 if stored == [3] else 1)


def csv_with_bom_and_repeats(h: Harness) -> Outcome:
    folder, task = labelled_day(h, "csv_bom")
    item = task["data"]["items"][0]  # type: ignore[index]
    lines = ["task_id,item_id,grade,annotator", f"{task['data']['task_id']},{item['item_id']},1,a",  # type: ignore[index]
             f"{task['data']['task_id']},{item['item_id']},4,a"]  # type: ignore[index]  # fmt: skip
    (folder / "labels.csv").write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    done = h.smar(folder, "import-labels", "--ds", DS, "--path", "labels.csv")
    stored = grades(folder)
    return Outcome(done.returncode == 0 and stored == [4], f"exit {done.returncode}, stored {stored} (the last grade, 4)",
                   0 if stored else 2)  # fmt: skip


def label_file_over_threshold(h: Harness) -> Outcome:
    folder, _ = labelled_day(h, "labels_threshold")
    (folder / "wrong.csv").write_text("task_id,item_id,grade,annotator\n" + "".join(f"t{i},x,2,a\n" for i in range(5)))
    done = h.smar(folder, "import-labels", "--ds", DS, "--path", "wrong.csv")
    return Outcome(done.returncode == 2, f"exit {done.returncode} (2 expected: every row refused)")


KILL = """
import os, sys
from smar.lake import Lakehouse
if hasattr(Lakehouse, "_commit"):
    original = Lakehouse._commit
    def commit(self, table, write):
        if table == "bronze.items":
            os._exit(137)
        return original(self, table, write)
    Lakehouse._commit = commit
else:  # the DELETE-then-append path: killed between its two commits
    original_sql = None
    def delete_then_append(self, conformed, table, slice_values):
        from smar.predicates import predicate
        if table == "bronze.items":
            self.spark.sql(f"DELETE FROM delta.`{self.uri(table)}` WHERE {predicate(slice_values)}").collect()
            os._exit(137)
    Lakehouse._delete_then_append = delete_then_append
from smar.cli import app
sys.argv = ["smar", "ingest", "--ds", "2026-11-01", "--size", "tiny", "--seed", "7", "--skip-quality"]
app()
"""


def kill_in_the_middle_of_a_write(h: Harness) -> Outcome:
    folder = h.case_dir("kill")
    h.smar(folder, "ingest", "--ds", DS, "--size", "tiny", "--skip-quality")
    before = len(rows_of(folder / "warehouse", "bronze.items"))
    killed = h.python(folder, KILL)
    after = len(rows_of(folder / "warehouse", "bronze.items"))
    return Outcome(killed.returncode == 137 and after == before and before > 0,
                   f"bronze.items rows of the day: {before} before, {after} after the kill", max(before - after, 0))  # fmt: skip


def concurrent_days(h: Harness) -> Outcome:
    folder = h.case_dir("concurrent")
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "smar.cli", "ingest", "--ds", day, "--size", "tiny"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=folder,
            env=h.env(folder / "warehouse"),
        )  # fmt: skip
        for day in ("2026-11-01", "2026-11-02")
    ]
    codes = [run.wait(timeout=1200) for run in runs]
    present = [len(rows_of(folder / "warehouse", "bronze.search_logs", day)) for day in ("2026-11-01", "2026-11-02")]
    lost = sum(900 - count for count in present)
    return Outcome(codes == [0, 0] and present == [900, 900], f"exit codes {codes}, rows per day {present}", lost)


def demo_rerun_registers_nothing_new(h: Harness) -> Outcome:
    folder = h.case_dir("demo_rerun")
    counts = []
    for _ in range(2):
        done = h.smar(folder, "demo", "--size", "tiny", timeout=3600)
        if done.returncode != 0:
            return Outcome(False, f"demo failed: {done.stderr[-300:]}")
        warehouse = folder / "warehouse"
        counts.append(
            tuple(
                open_delta_table((warehouse / table).as_uri()).to_pyarrow_dataset().count_rows()
                for table in ("gold/reranker_runs", "gold/ab_decisions", "gold/replay_metrics")
            )
            + (len([p for p in (folder / "artifacts" / "single_modal").iterdir() if p.is_dir()]),)
        )
    return Outcome(
        counts[0] == counts[1], f"(runs, decisions, replay rows, single-modal versions): {counts[0]} -> {counts[1]}"
    )


CASES: list[Callable[[Harness], Outcome]] = [
    two_parts_of_one_table,
    jsonl_and_parquet_of_one_table,
    unknown_file_name,
    same_day_through_two_sources,
    typed_value_case("parquet_fraction_into_int_click", "bronze.search_logs", impression(clicked=1.9), "parquet"),
    typed_value_case("parquet_fraction_into_int_position", "bronze.search_logs", impression(position=5.7), "parquet"),
    typed_value_case("parquet_number_into_text", "bronze.search_logs", impression(user_id=42), "parquet"),
    typed_value_case("json_number_into_text", "bronze.search_logs", impression(query_text=5), "jsonl"),
    typed_value_case("json_nan_dwell", "bronze.search_logs", impression(dwell_seconds=float("nan")), "jsonl"),
    typed_value_case("parquet_infinite_dwell", "bronze.search_logs", impression(dwell_seconds=float("inf")), "parquet"),
    typed_value_case(
        "parquet_nan_in_visual_embedding",
        "bronze.items",
        {
            "ds": DS,
            "item_id": "i1",
            "modality": "image",
            "title": "t",
            "body": "b",
            "source": "file",
            "visual_embedding": [0.5, float("nan")],
        },
        "parquet",
    ),  # fmt: skip
    empty_key_and_one_parse_reason,
    jsonl_with_bom,
    bad_edge("ds_escaping_the_warehouse", "ingest", "--ds", "../../x", "--size", "tiny"),
    bad_edge("bogus_day_for_generate", "generate", "--ds", "yesterday", "--out", "raw"),
    bad_edge(
        "run_id_escaping_the_reports", "replay", "--candidate", "production", "--ds-start", DS, "--run-id", "../x"
    ),
    stale_export,
    csv_with_bom_and_repeats,
    label_file_over_threshold,
    kill_in_the_middle_of_a_write,
    concurrent_days,
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, default=REPOSITORY, help="the checkout whose code is tested")
    parser.add_argument("--with-demo", action="store_true", help="also run the demo twice (minutes)")
    args = parser.parse_args()
    cases = [*CASES, demo_rerun_registers_nothing_new] if args.with_demo else CASES
    root = Path(tempfile.mkdtemp(prefix="smar-hostile-"))
    harness = Harness(args.code.resolve(), root)
    passed = rows_lost = 0
    started = time.perf_counter()
    try:
        for case in cases:
            try:
                outcome = case(harness)
            except Exception as error:  # a crash of the harness setup counts as a failed case
                outcome = Outcome(False, f"{type(error).__name__}: {str(error)[-300:]}")
            passed += outcome.passed
            rows_lost += outcome.rows_lost
            print(
                f"{'PASS' if outcome.passed else 'FAIL'} {case.__name__}: {outcome.detail}; rows lost {outcome.rows_lost}"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    record_result(
        {"code": str(args.code), "cases": len(cases), "passed": passed, "failed": len(cases) - passed,
         "rows_lost_or_changed": rows_lost, "seconds": round(time.perf_counter() - started, 1)},
        "hostile_inputs",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

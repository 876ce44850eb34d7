"""`smar eval`: the command analysts run on qrels and run files (TREC or CSV)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from smar.cli.evaluate import eval_app, run_eval
from smar.metrics.trec_files import InputFileError, read_run

runner = CliRunner()

QRELS = """q1 0 a 2
q1 0 b 0
q1 0 c 1
q2 0 x 1
q2 0 y 0
q3 0 z 1
"""
# The rank column contradicts the scores for q2 on purpose: it must be ignored.
RUN = """q1 Q0 a 1 0.9 tag
q1 Q0 b 2 0.8 tag
q1 Q0 c 3 0.7 tag
q2 Q0 y 2 0.6 tag
q2 Q0 x 1 0.5 tag
q9 Q0 m 1 0.1 tag
"""
# Hand-computed: q1 ranks a(2) b(0) c(1); q2 ranks y(0) x(1).
MAP_Q1 = (1 / 1 + 2 / 3) / 2
MAP_Q2 = 1 / 2
NDCG_Q1_LINEAR = (2 + 1 / math.log2(4)) / (2 + 1 / math.log2(3))
NDCG_Q1_EXPONENTIAL = (3 + 1 / math.log2(4)) / (3 + 1 / math.log2(3))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def parse_lines(stdout: str) -> dict[tuple[str, str], str]:
    """{(measure, qid): value} from trec_eval-style lines."""
    parsed = {}
    for line in stdout.splitlines():
        measure, query_id, value = line.split("\t")
        parsed[(measure.strip(), query_id)] = value
    return parsed


@pytest.fixture()
def trec_files(tmp_path: Path) -> tuple[Path, Path]:
    return write(tmp_path, "qrels.txt", QRELS), write(tmp_path, "run.txt", RUN)


def invoke(*args: str | Path):
    return runner.invoke(eval_app, [str(arg) for arg in args])


def test_trec_files_per_query_and_overall(trec_files: tuple[Path, Path]) -> None:
    qrels, run = trec_files
    # When evaluating with -q and three measures
    result = invoke("--qrels", qrels, "--run", run, "-m", "map", "-m", "P_2", "-m", "recip_rank", "-q")
    # Then it succeeds and prints per-query lines then `all`, with hand-computed values
    assert result.exit_code == 0, result.output
    values = parse_lines(result.stdout)
    assert float(values[("map", "q1")]) == pytest.approx(MAP_Q1, abs=1e-4)
    assert float(values[("map", "q2")]) == pytest.approx(MAP_Q2, abs=1e-4)
    assert float(values[("map", "all")]) == pytest.approx((MAP_Q1 + MAP_Q2) / 2, abs=1e-4)
    assert values[("P_2", "q1")] == "0.5000" and values[("P_2", "q2")] == "0.5000"
    assert values[("recip_rank", "q2")] == "0.5000"
    # And the lines keep trec_eval's layout: measure padded to 22 characters, then tabs
    assert result.stdout.splitlines()[0] == f"{'map':<22}\tq1\t{MAP_Q1:.4f}"
    # And the queries found in only one file are reported with counts
    assert "1 run queries have no qrels" in result.stderr
    assert "1 qrels queries are missing from the run" in result.stderr


def test_without_q_only_overall_lines(trec_files: tuple[Path, Path]) -> None:
    qrels, run = trec_files
    result = invoke("--qrels", qrels, "--run", run, "-m", "map", "-m", "num_q")
    assert result.exit_code == 0, result.output
    assert set(parse_lines(result.stdout)) == {("map", "all"), ("num_q", "all")}
    assert parse_lines(result.stdout)[("num_q", "all")] == "2"


def test_complete_scores_missing_queries_zero(trec_files: tuple[Path, Path]) -> None:
    qrels, run = trec_files
    # When -c is given, q3 (judged, not in the run) counts as 0
    result = invoke("--qrels", qrels, "--run", run, "-m", "map", "-c", "-q")
    values = parse_lines(result.stdout)
    assert values[("map", "q3")] == "0.0000"
    assert float(values[("map", "all")]) == pytest.approx((MAP_Q1 + MAP_Q2 + 0) / 3, abs=1e-4)


def test_gain_option(trec_files: tuple[Path, Path]) -> None:
    qrels, run = trec_files
    linear = parse_lines(invoke("--qrels", qrels, "--run", run, "-m", "ndcg", "-q").stdout)
    exponential = parse_lines(
        invoke("--qrels", qrels, "--run", run, "-m", "ndcg", "-q", "--gain", "exponential").stdout
    )
    assert float(linear[("ndcg", "q1")]) == pytest.approx(NDCG_Q1_LINEAR, abs=1e-4)
    assert float(exponential[("ndcg", "q1")]) == pytest.approx(NDCG_Q1_EXPONENTIAL, abs=1e-4)


def test_ties_option(tmp_path: Path) -> None:
    # Given two documents tied in score, the relevant one with the smaller id
    qrels = write(tmp_path, "q.txt", "q1 0 a 1\nq1 0 b 0\n")
    run = write(tmp_path, "r.txt", "q1 Q0 a 1 0.5 t\nq1 Q0 b 2 0.5 t\n")
    by_doc_id = parse_lines(invoke("--qrels", qrels, "--run", run, "-m", "recip_rank").stdout)
    by_input = parse_lines(invoke("--qrels", qrels, "--run", run, "-m", "recip_rank", "--ties", "input_order").stdout)
    # Then trec_eval's rule puts b first (descending id), input order puts a first
    assert by_doc_id[("recip_rank", "all")] == "0.5000"
    assert by_input[("recip_rank", "all")] == "1.0000"


def test_csv_files_are_detected_and_agree_with_trec(tmp_path: Path, trec_files: tuple[Path, Path]) -> None:
    # Given the same judgements and run as CSV with headers
    qrels_csv = write(
        tmp_path,
        "qrels.csv",
        "qid,pid,rel\n" + "".join(f"{q},{d},{r}\n" for q, _, d, r in (line.split() for line in QRELS.splitlines())),
    )
    run_csv = write(
        tmp_path,
        "run.csv",
        "qid,pid,score\n"
        + "".join(f"{q},{d},{s}\n" for q, _, d, _, s, _ in (line.split() for line in RUN.splitlines())),
    )
    arguments = ["-m", "map", "-m", "ndcg_cut_2", "-m", "err_3", "-q"]
    from_csv = invoke("--qrels", qrels_csv, "--run", run_csv, *arguments)
    from_trec = invoke("--qrels", trec_files[0], "--run", trec_files[1], *arguments)
    # Then both give identical output
    assert from_csv.exit_code == 0, from_csv.output
    assert from_csv.stdout == from_trec.stdout


def test_json_format(trec_files: tuple[Path, Path]) -> None:
    qrels, run = trec_files
    result = invoke("--qrels", qrels, "--run", run, "-m", "map", "-m", "num_ret", "-q", "--format", "json")
    document = json.loads(result.stdout)
    assert document["all"]["map"] == pytest.approx((MAP_Q1 + MAP_Q2) / 2)
    assert document["per_query"]["q1"]["num_ret"] == 3
    assert len(document["warnings"]) == 2


def test_matches_trec_eval_golden_end_to_end(sample_data: Path) -> None:
    # Given trec_eval's output for -q on the sample qrels and run
    directory = sample_data / "trec_eval"
    measures = ["ndcg", "ndcg_cut_5", "ndcg_cut_10", "ndcg_cut_20", "map", "recip_rank", "P_5", "P_10"]
    golden = {
        (measure, query_id): float(value)
        for measure, query_id, value in (line.split() for line in (directory / "out.test.aq").read_text().splitlines())
        if measure in measures
    }
    arguments = [item for measure in measures for item in ("-m", measure)]
    result = invoke("--qrels", directory / "qrels.test", "--run", directory / "results.test", "-q", *arguments)
    ours = {key: float(value) for key, value in parse_lines(result.stdout).items()}
    # Then every (measure, query) line and every `all` line agrees
    assert ours.keys() == golden.keys()
    for key, value in golden.items():
        assert ours[key] == pytest.approx(value, abs=1e-4), key


@pytest.mark.parametrize(
    ("run_text", "message"),
    [
        ("q1 Q0 a 1 0.9 t\nq1 Q0 b 2 0.8 t\nq1 Q0 a 3 0.7 t\n", r"run\.txt:3: 1 duplicate .*'a' on lines \[1, 3\]"),
        ("q1 Q0 a 1 0.9 t\nq1 Q0 b 2 nan t\n", r"run\.txt:2: score is NaN"),
        ("q1 Q0 a 1 0.9 t\nq1 Q0 b 2 high t\n", r"run\.txt:2: score 'high' is not a number"),
        ("q1 Q0 a 1 0.9\n", r"run\.txt:1: expected 6 fields"),
        ("", r"run\.txt: file is empty"),
        ("\n\n", r"run\.txt: file is empty"),
    ],
)
def test_bad_run_is_refused_with_file_line_and_reason(tmp_path: Path, run_text: str, message: str) -> None:
    qrels = write(tmp_path, "qrels.txt", QRELS)
    run = write(tmp_path, "run.txt", run_text)
    # When the run file is broken
    result = invoke("--qrels", qrels, "--run", run)
    # Then the command fails and says where and why
    assert result.exit_code != 0
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert re.search(message, result.stderr), result.stderr


def test_bad_qrels_and_csv_headers(tmp_path: Path) -> None:
    run = write(tmp_path, "run.txt", RUN)
    duplicated = write(tmp_path, "dup.txt", "q1 0 a 1\nq1 0 a 0\n")
    result = invoke("--qrels", duplicated, "--run", run)
    assert result.exit_code != 0 and "dup.txt:2" in result.stderr and "duplicate" in result.stderr
    no_value_column = write(tmp_path, "labels.csv", "qid,pid,weight\nq1,a,1\n")
    result = invoke("--qrels", no_value_column, "--run", run)
    assert result.exit_code != 0 and "no relevance column" in result.stderr
    bad_number = write(tmp_path, "scores.csv", "qid,pid,score\nq1,a,0.5\n\nq1,b,abc\n")
    with pytest.raises(InputFileError, match=r"scores\.csv:4: score 'abc'"):
        read_run(bad_number)


def test_no_common_query_is_an_error(tmp_path: Path) -> None:
    qrels = write(tmp_path, "qrels.txt", "q1 0 a 1\n")
    run = write(tmp_path, "run.txt", "q2 Q0 a 1 0.5 t\n")
    result = invoke("--qrels", qrels, "--run", run)
    assert result.exit_code != 0
    assert "nothing to evaluate" in result.stderr


def test_unknown_measure_is_an_error(trec_files: tuple[Path, Path]) -> None:
    result = invoke("--qrels", trec_files[0], "--run", trec_files[1], "-m", "bpref")
    assert result.exit_code != 0
    assert "unknown measure 'bpref'" in result.stderr


def test_run_eval_function_returns_numbers_and_warnings(trec_files: tuple[Path, Path]) -> None:
    result = run_eval(*trec_files, measures=["map"], output_format="json")
    assert result.evaluation.overall["map"] == pytest.approx((MAP_Q1 + MAP_Q2) / 2)
    assert json.loads(result.text)["all"]["map"] == pytest.approx((MAP_Q1 + MAP_Q2) / 2)
    assert len(result.warnings) == 2


def test_mounts_as_a_subcommand(trec_files: tuple[Path, Path]) -> None:
    # Given a parent app that mounts eval_app as `eval` (as the smar CLI does)
    parent = typer.Typer()

    @parent.command()
    def other() -> None:
        """Another command, so that the parent is a group."""

    parent.add_typer(eval_app, name="eval")
    result = runner.invoke(parent, ["eval", "--qrels", str(trec_files[0]), "--run", str(trec_files[1]), "-m", "map"])
    # Then `eval` takes the options directly
    assert result.exit_code == 0, result.output
    assert float(parse_lines(result.stdout)[("map", "all")]) == pytest.approx((MAP_Q1 + MAP_Q2) / 2, abs=1e-4)

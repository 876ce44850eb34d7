"""`smar eval`: the command analysts run on qrels and run files (TREC or CSV)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
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


# -- qrels that list only the relevant pairs ------------------------------------------------------
# The same judgements as QRELS where every grade >= 1 becomes 1, written without a relevance column.
LISTED = [("q1", "a"), ("q1", "c"), ("q2", "x"), ("q3", "z")]
BINARY_QRELS = "".join(f"{q} 0 {d} 1\n" for q, d in LISTED)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pairs.csv", "qid,pid\n" + "".join(f"{q},{d}\n" for q, d in LISTED)),
        ("pairs.tsv", "query_id\tdoc_id\n" + "".join(f"{q}\t{d}\n" for q, d in LISTED)),
        ("pairs.txt", "".join(f"{q} {d}\n" for q, d in LISTED)),  # no header: two fields per line
        ("pairs_tabs.txt", "".join(f"{q}\t{d}\n" for q, d in LISTED)),
    ],
)
def test_qrels_without_a_relevance_column_count_every_listed_pair_as_relevant(tmp_path: Path, name, text) -> None:
    run = write(tmp_path, "run.txt", RUN)
    listed = write(tmp_path, name, text)
    binary = write(tmp_path, "binary.txt", BINARY_QRELS)
    arguments = ["--run", run, "-m", "map", "-m", "ndcg_cut_3", "-m", "recip_rank", "-q"]
    # When evaluated against the pair list and against the same pairs with grade 1
    from_pairs = invoke("--qrels", listed, *arguments)
    from_binary = invoke("--qrels", binary, *arguments)
    # Then both agree, and a warning says how the pairs were read
    assert from_pairs.exit_code == 0, from_pairs.output
    assert from_pairs.stdout == from_binary.stdout
    assert "no relevance column; every listed (query, document) pair counts as relevant (grade 1)" in from_pairs.stderr
    # q1 ranks a(1) b(0) c(1): AP = (1 + 2/3) / 2
    assert float(parse_lines(from_pairs.stdout)[("map", "q1")]) == pytest.approx((1 + 2 / 3) / 2, abs=1e-4)


def test_a_tsv_header_with_a_relevance_column_is_read(tmp_path: Path, trec_files: tuple[Path, Path]) -> None:
    qrels_tsv = write(tmp_path, "qrels.tsv", "qid\tpid\trel\n" + "".join(
        f"{q}\t{d}\t{r}\n" for q, _, d, r in (line.split() for line in QRELS.splitlines())))  # fmt: skip
    arguments = ["--run", trec_files[1], "-m", "map", "-m", "ndcg", "-q"]
    from_tsv = invoke("--qrels", qrels_tsv, *arguments)
    assert from_tsv.exit_code == 0, from_tsv.output
    assert from_tsv.stdout == invoke("--qrels", trec_files[0], *arguments).stdout


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "clicks.csv",
            "qid,pid,clicks\nq1,a,3\n",
            r"no relevance column .* other column\(s\) \['clicks'\]: which one is the grade",
        ),
        ("three.txt", "q1 a 1\nq1 b 0\n", r"3 whitespace-separated fields per line without a header is ambiguous"),
        ("three.csv", "q1,a,1\n", r"3 CSV fields per line without a header is ambiguous"),
        ("mixed.txt", "q1 a\nq1 0 b 1\n", r"mixed\.txt:2: expected 2 fields 'qid docid', got 4"),
    ],
)
def test_ambiguous_qrels_are_refused_in_one_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    run = write(tmp_path, "run.txt", RUN)
    result = invoke("--qrels", write(tmp_path, name, text), "--run", run)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
    assert re.search(message, result.stderr), result.stderr


# -- --compare RUN_A RUN_B --------------------------------------------------------------------------
# qrels: q1 relevant a, c; q2 relevant x. Run A ranks q1 a b c and q2 y x; run B ranks q1 c a b and q2 x y.
COMPARE_QRELS = "q1 0 a 1\nq1 0 b 0\nq1 0 c 1\nq2 0 x 1\nq2 0 y 0\n"
RUN_A = "q1 Q0 a 1 0.9 A\nq1 Q0 b 2 0.8 A\nq1 Q0 c 3 0.7 A\nq2 Q0 y 1 0.6 A\nq2 Q0 x 2 0.5 A\n"
RUN_B = "q1 Q0 c 1 0.9 B\nq1 Q0 a 2 0.8 B\nq1 Q0 b 3 0.7 B\nq2 Q0 x 1 0.6 B\nq2 Q0 y 2 0.5 B\n"


def test_compare_gives_paired_differences_a_randomisation_test_and_an_interval(tmp_path: Path) -> None:
    qrels = write(tmp_path, "qrels.txt", COMPARE_QRELS)
    run_a, run_b = write(tmp_path, "a.txt", RUN_A), write(tmp_path, "b.txt", RUN_B)
    result = invoke("--qrels", qrels, "--compare", run_a, run_b, "-m", "map", "-m", "recip_rank", "-m", "num_q",
                    "--format", "json", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    average_precision = document["measures"]["map"]
    # By hand: AP(A) = q1 (1 + 2/3) / 2 = 5/6, q2 1/2; AP(B) = 1 and 1. Differences 1/6 and 1/2.
    assert average_precision["a"] == pytest.approx((5 / 6 + 1 / 2) / 2)
    assert average_precision["b"] == pytest.approx(1.0)
    assert average_precision["delta"] == pytest.approx(1 / 3)
    # Exact sign flips of (1/6, 1/2): |means| 1/3, 1/6, 1/6, 1/3 -> 2 of 4 as extreme as 1/3
    assert average_precision["p_value"] == pytest.approx(0.5)
    # Two queries: the bootstrap resamples (1/6, 1/6), (1/6, 1/2) or (1/2, 1/2): the interval spans their means
    assert average_precision["ci_low"] == pytest.approx(1 / 6) and average_precision["ci_high"] == pytest.approx(0.5)
    assert average_precision["n_queries"] == 2
    # recip_rank: differences 0 and 1/2; every sign vector gives |mean| 1/4: p = 1
    assert document["measures"]["recip_rank"]["delta"] == pytest.approx(0.25)
    assert document["measures"]["recip_rank"]["p_value"] == pytest.approx(1.0)
    # count measures are totals, not compared (and said so)
    assert "num_q" not in document["measures"]
    assert any("count measures ['num_q']" in warning for warning in document["warnings"])
    per_query = {(row["measure"], row["query_id"]): row["delta"] for row in document["per_query"]}
    assert per_query[("map", "q1")] == pytest.approx(1 / 6) and per_query[("map", "q2")] == pytest.approx(0.5)


def test_compare_trec_lines(tmp_path: Path) -> None:
    qrels = write(tmp_path, "qrels.txt", COMPARE_QRELS)
    run_a, run_b = write(tmp_path, "a.txt", RUN_A), write(tmp_path, "b.txt", RUN_B)
    result = invoke("--qrels", qrels, "--compare", run_a, run_b, "-m", "map")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert lines[0].split("\t") == [f"{'measure':<22}", "A", "B", "delta", "ci_low", "ci_high", "p", "queries"]
    assert lines[1].split("\t") == [f"{'map':<22}", "0.6667", "1.0000", "+0.3333", "+0.1667", "+0.5000", "0.5000", "2"]
    # the same run twice: no difference, p = 1
    same = invoke("--qrels", qrels, "--compare", run_a, run_a, "-m", "map")
    assert same.stdout.splitlines()[-1].split("\t")[3:7] == ["+0.0000", "+0.0000", "+0.0000", "1.0000"]


def test_compare_needs_exactly_one_of_run_and_compare(tmp_path: Path) -> None:
    qrels = write(tmp_path, "qrels.txt", COMPARE_QRELS)
    run_a = write(tmp_path, "a.txt", RUN_A)
    both = invoke("--qrels", qrels, "--run", run_a, "--compare", run_a, run_a)
    neither = invoke("--qrels", qrels)
    for result in (both, neither):
        assert result.exit_code == 2 and "either --run RUN or --compare RUN_A RUN_B" in result.stderr


def test_randomisation_test_by_hand() -> None:
    from smar.metrics.comparison import paired_randomisation_test

    # three equal differences: of the 8 sign vectors only all-plus and all-minus reach |mean| 0.5
    assert paired_randomisation_test([0.5, 0.5, 0.5]) == pytest.approx(2 / 8)
    assert paired_randomisation_test([0.0, 0.0]) == 1.0 and paired_randomisation_test([]) == 1.0
    # 20 queries: random sign flips, never exactly 0 (1 + count) / (1 + n)
    assert paired_randomisation_test([0.1] * 20, n_resamples=999, seed=1) == pytest.approx(1 / 1000)
    noise = np.random.default_rng(0).normal(size=30)
    assert 0.05 < paired_randomisation_test(noise - noise.mean(), n_resamples=2000) <= 1.0

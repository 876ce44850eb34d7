"""The replay job end to end on one generated demo day: decisions, idempotent tables, the report,
the `replay` command and the analysts' QueryBuilder example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from smar.config import SmarSettings
from smar.ingest.jobs import run_ingest
from smar.lake import Lakehouse
from smar.replay.decision import DecisionConfig, decide
from smar.replay.inputs import RANKING_COLUMNS, NamedRanking
from smar.replay.jobs import read_replay_metrics, replay_config, replay_evaluate, replay_run_id
from smar.replay.measures import SUMMARY_COLUMNS
from smar.replay.report import format_delta, format_value
from smar.splits import query_split
from smar.storage.uris import local_path

DS = "2026-11-01"
REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
FAST = replay_config(n_resamples=500)


@dataclass
class Demo:
    lake: Lakehouse
    pages: pd.DataFrame  # held-out impressions with their hidden grade


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory) -> Demo:
    """One demo-size generated day (about 48 held-out queries), ingested into a module warehouse."""
    root = tmp_path_factory.mktemp("replay")
    lake = Lakehouse(spark, SmarSettings(warehouse=root / "warehouse", artifacts=root / "artifacts",
                                         reports=root / "reports"))  # fmt: skip
    run_ingest(spark, lake, ds=DS, source="generator", size="demo", seed=5, run_quality_checks=False)
    logs = lake.read("bronze.search_logs").select(*RANKING_COLUMNS[:-1]).toPandas()
    logs = logs[logs["query_id"].map(query_split) == "test"]
    truth = lake.read("truth.relevance").select("ds", "query_id", "item_id", "grade").toPandas()
    return Demo(lake, logs.merge(truth, on=["ds", "query_id", "item_id"], how="left"))


def ranking(spark, pages: pd.DataFrame, scores: np.ndarray, name: str) -> NamedRanking:
    frame = pages[list(RANKING_COLUMNS[:-1])].assign(score=scores)
    return NamedRanking(name, spark.createDataFrame(frame))


def truth_sorted_scores(pages: pd.DataFrame, seed: int = 11) -> np.ndarray:
    """An oracle-ish candidate: hidden grade plus noise smaller than one grade step."""
    return pages["grade"].to_numpy(float) + np.random.default_rng(seed).uniform(0, 0.5, len(pages))


def video_reversed_scores(pages: pd.DataFrame) -> np.ndarray:
    """The truth-sorted page, but the video items swap places: the best video takes the worst
    video's slot. The slots (so the exposure) stay; the order inside video is inverted."""
    scores = pd.Series(truth_sorted_scores(pages), index=pages.index)
    for _, page in pages[pages["modality"] == "video"].groupby(["ds", "request_id"]):
        ordered = scores[page.index].sort_values(ascending=False)
        scores[ordered.index] = ordered.to_numpy()[::-1]
    return scores.to_numpy()


@pytest.fixture(scope="module")
def oracle_run(spark, demo):
    """The truth-sorted candidate replayed against production with the default thresholds."""
    candidate = ranking(spark, demo.pages, truth_sorted_scores(demo.pages), "truth_sorted")
    return replay_evaluate(spark, demo.lake, control="production", candidate=candidate, ds_start=DS, ds_end=DS,
                           config=FAST)  # fmt: skip


def test_a_a_replay_has_intervals_around_zero_and_does_not_ship(spark, demo) -> None:
    # Given control = candidate = the logged production order
    summary = replay_evaluate(spark, demo.lake, control="production", candidate="production", ds_start=DS,
                              ds_end=DS, config=FAST)  # fmt: skip
    # Then every metric's interval contains 0 and the decision is not SHIP
    metrics = read_replay_metrics(demo.lake, summary.run_id)
    assert len(metrics) == summary.metric_rows > 20
    assert (metrics["ci_low"] <= 0).all() and (metrics["ci_high"] >= 0).all()
    assert (metrics["delta"] == 0).all()
    assert summary.decision == "INCONCLUSIVE"
    assert summary.n_queries >= 30


def test_a_truth_sorted_candidate_ships_with_the_default_thresholds(demo, oracle_run) -> None:
    assert oracle_run.decision == "SHIP", oracle_run.reasons
    assert oracle_run.primary_metric == "ndcg@10 all [oracle]"
    assert oracle_run.primary_ci_low > 0.1
    assert any("hidden grades" in reason for reason in oracle_run.reasons)
    decisions = demo.lake.read_arrow("gold.ab_decisions", filters=[("run_id", "=", oracle_run.run_id)]).to_pylist()
    assert [row["decision"] for row in decisions] == ["SHIP"]
    assert decisions[0]["reasons"] == oracle_run.reasons


def test_a_modality_guardrail_breach_flips_the_decision(spark, demo) -> None:
    # Given the truth-sorted page with the order inside video inverted
    candidate = ranking(spark, demo.pages, video_reversed_scores(demo.pages), "video_reversed")
    # When replayed with the default per-modality threshold, and with a tolerant one
    strict = replay_evaluate(spark, demo.lake, control="production", candidate=candidate, ds_start=DS, ds_end=DS,
                             config=FAST)  # fmt: skip
    tolerant = decide(read_replay_metrics(demo.lake, strict.run_id)[list(SUMMARY_COLUMNS)],
                      DecisionConfig(max_modality_ndcg_drop=1.0))  # fmt: skip
    # Then the video breach says NO_SHIP although the page as a whole is better; tolerated, it ships
    assert strict.decision == "NO_SHIP"
    assert strict.primary_ci_low > 0
    assert any("video" in reason and "BREACH" in reason for reason in strict.reasons)
    assert tolerant.decision == "SHIP"
    # and the thresholds are part of a run's identity
    assert replay_run_id(control="production", candidate="video_reversed", ds_start=DS, ds_end=DS, config=FAST) != (
        replay_run_id(control="production", candidate="video_reversed", ds_start=DS, ds_end=DS,
                      config=replay_config(n_resamples=500, max_modality_ndcg_drop=1.0))
    )  # fmt: skip


def test_click_estimates_cover_the_truth_and_record_their_curve(demo, oracle_run) -> None:
    metrics = read_replay_metrics(demo.lake, oracle_run.run_id)
    clicks = metrics[metrics["metric"] == "clicks"].set_index(["label_source", "k"])
    truth = clicks.loc[("oracle_clicks", 5)]
    ips = clicks.loc[("clicks_pbm_ips", 5)]
    # The truth-sorted candidate really gains clicks; IPS on the curve from randomised traffic sees it
    assert truth["delta"] > 0.3
    assert bool(ips["reliable"]) and pd.isna(ips["unreliable_reason"])
    assert ips["ci_low"] <= truth["delta"] <= ips["ci_high"] and ips["ci_low"] > 0
    # Every row with a finite interval has its minimum detectable effect (PNR intervals may be infinite)
    finite = np.isfinite(metrics["ci_low"].astype(float)) & np.isfinite(metrics["ci_high"].astype(float))
    assert ips["mde"] > 0 and metrics.loc[finite, "mde"].notna().all()
    # Label metrics are reliable by definition; click rows name the curve they divided by
    assert metrics.loc[metrics["metric"] != "clicks", "reliable"].all()
    assert metrics.loc[metrics["metric"] != "clicks", "click_propensities_version"].isna().all()
    version = ips["click_propensities_version"]
    assert version.startswith("prop-") and clicks.loc[("oracle_clicks", 5), "click_propensities_version"] == version
    curve = demo.lake.read_arrow("gold.click_propensities", filters=[("curve_version", "=", version)]).to_pandas()
    assert sorted(curve["position"]) == list(range(1, 33))
    first = curve.set_index("position").loc[1]
    assert first["examination"] == 1.0 and first["ds_start"] == first["ds_end"] == DS
    assert (curve["ci_low"] <= curve["examination"] + 1e-12).all() and (
        curve["examination"] <= curve["ci_high"] + 1e-12
    ).all()
    # The doubly robust estimator is computed, and its own gates mark it unreliable at this scale
    assert not bool(clicks.loc[("clicks_iidr", 5), "reliable"])
    assert "outside [0, k]" in clicks.loc[("clicks_iidr", 5), "unreliable_reason"]


def test_tables_are_idempotent_per_run_id(spark, demo, oracle_run) -> None:
    # Given the truth-sorted replay already written
    def stored(table: str) -> pd.DataFrame:
        frame = demo.lake.read_arrow(table, filters=[("run_id", "=", oracle_run.run_id)]).to_pandas()
        frame = frame.drop(columns=["created_at"])
        frame["reasons"] = frame["reasons"].map(list) if "reasons" in frame else None
        keys = [column for column in ("run_id", "metric", "segment", "k", "label_source") if column in frame]
        return frame.sort_values(keys).reset_index(drop=True)

    before_metrics, before_decisions = stored("gold.replay_metrics"), stored("gold.ab_decisions")
    total_before = demo.lake.row_count("gold.replay_metrics")
    # When the same inputs are replayed again (the same scores, so the same derived run_id)
    candidate = ranking(spark, demo.pages, truth_sorted_scores(demo.pages), "truth_sorted")
    again = replay_evaluate(spark, demo.lake, control="production", candidate=candidate, ds_start=DS, ds_end=DS,
                            config=FAST)  # fmt: skip
    # Then the run id is the same and its rows are replaced, not duplicated
    assert again.run_id == oracle_run.run_id
    assert demo.lake.row_count("gold.replay_metrics") == total_before
    pd.testing.assert_frame_equal(stored("gold.replay_metrics"), before_metrics)
    pd.testing.assert_frame_equal(stored("gold.ab_decisions"), before_decisions)
    # And other scores under the same name would be another run
    names = {"control": "production", "candidate": "truth_sorted", "ds_start": DS, "ds_end": DS, "config": FAST}
    assert replay_run_id(**names, scores_fingerprint="a") != replay_run_id(**names, scores_fingerprint="b")


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs)["src"] or "")


def _is_png(path: Path) -> bool:
    with Image.open(path) as image:
        image.verify()
        return image.format == "PNG"


def test_report_renders_with_its_images_and_the_table_numbers(demo, oracle_run, tmp_path) -> None:
    html = local_path(oracle_run.report_html).read_text(encoding="utf-8")
    parser = _Images()
    parser.feed(html)
    # Every <img> points at a PNG next to the page (five plots, the click examination curve last)
    assert len(parser.sources) == 5 and parser.sources[-1] == "click_propensities.png"
    for source in parser.sources:
        path = local_path(oracle_run.report_html).parent / source
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and _is_png(path), source
    markdown = local_path(oracle_run.report_markdown).read_text(encoding="utf-8")
    assert all(f"]({source})" in markdown for source in parser.sources)
    # The numbers printed are the stored rows' numbers
    metrics = read_replay_metrics(demo.lake, oracle_run.run_id)
    for _, row in metrics[metrics["metric"] == "ndcg"].iterrows():
        cells = [format_value(row["control_value"]), format_value(row["candidate_value"]), format_delta(row["delta"]),
                 format_delta(row["ci_low"]), format_delta(row["ci_high"])]  # fmt: skip
        expected = "".join(f"<td>{cell}</td>" for cell in cells)
        assert expected in html, row.to_dict()
        assert " | ".join(cells) in markdown
    assert oracle_run.decision in html and "SHIP" in markdown
    # The click section: the curve with its band, every gate, the MDE column and the truth
    for text in (
        "## Click estimates",
        "Examination curve prop-",
        "bootstrap band",
        "### Sanity gates",
        "| propensity | PASS |",
        "| aa[clicks_pbm_ips@5] | PASS |",
        "covers the truth",
        "oracle_clicks",
    ):
        assert text in markdown, text  # fmt: skip
    assert "<th>MDE</th>" in html and "Sanity gates" in html

    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium not installed (apt-get install chromium): page screenshot not taken")
    screenshot = tmp_path / "report.png"
    completed = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--screenshot={screenshot}", "--window-size=1200,2000", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}",
         oracle_run.report_html],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert screenshot.is_file(), completed.stderr[-2000:]
    with Image.open(screenshot) as image:
        assert image.format == "PNG" and image.size == (1200, 2000)
        gray = np.asarray(image.convert("L"))
    # Not blank: text, tables and plots give many grey levels and a good share of non-white pixels
    assert len(np.unique(gray)) > 50
    assert (gray < 200).mean() > 0.02


def test_replay_command_runs_and_writes_the_tables(demo, tmp_path) -> None:
    # Given the `smar replay` command
    environment = {**os.environ, "SMAR_REPORTS": str(tmp_path / "reports"), "RUST_LOG": "error"}
    completed = subprocess.run(
        [sys.executable, "-m", "smar.cli", "replay", "--candidate", "production", "--ds-start", DS,
         "--warehouse", str(demo.lake.settings.warehouse), "--n-resamples", "200", "--run-id", "replay-cli-test"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=environment,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "INCONCLUSIVE" in completed.stdout
    stored = demo.lake.read_arrow("gold.ab_decisions", filters=[("run_id", "=", "replay-cli-test")]).to_pylist()
    assert [row["decision"] for row in stored] == ["INCONCLUSIVE"]
    assert (tmp_path / "reports" / "replay" / "replay-cli-test" / "index.html").is_file()


def test_replay_command_refuses_bad_input_before_starting_an_engine() -> None:
    from smar.cli import app

    runner = CliRunner()
    unknown = runner.invoke(app, ["replay", "--candidate", "bogus", "--ds-start", DS])
    assert unknown.exit_code == 2 and "unknown ranking source" in unknown.output
    bad_method = runner.invoke(app, ["replay", "--candidate", "production", "--ds-start", DS,
                                     "--bootstrap-method", "jackknife"])  # fmt: skip
    assert bad_method.exit_code == 2 and "method" in bad_method.output
    no_window = runner.invoke(app, ["replay", "--candidate", "production", "--ds-start", DS,
                                    "--propensity-window-days", "0"])  # fmt: skip
    assert no_window.exit_code == 2 and "propensity_window_days" in no_window.output


def test_the_analysts_querybuilder_example_runs(demo, oracle_run, monkeypatch) -> None:
    # Given the tested block of docs/analysts.md and a warehouse with replays
    text = (REPO / "docs" / "analysts.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- tested: querybuilder -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert block, "docs/analysts.md lost its tested QueryBuilder block"
    monkeypatch.setenv("SMAR_WAREHOUSE", str(demo.lake.settings.warehouse))
    namespace: dict = {}
    # When it runs
    exec(compile(block.group(1), "docs/analysts.md", "exec"), namespace)
    # Then "latest decision per model" has one row per candidate: its newest replay's decision
    latest = namespace["latest_decisions"].to_pandas().set_index("candidate")
    decisions = demo.lake.read_arrow("gold.ab_decisions").to_pandas().sort_values("created_at")
    expected = decisions.groupby("candidate").tail(1).set_index("candidate")
    assert sorted(latest.index) == sorted(expected.index)
    assert latest["run_id"].to_dict() == expected["run_id"].to_dict()
    assert latest.loc["truth_sorted", "decision"] == "SHIP"
    modality = namespace["modality_ndcg"].to_pandas()
    assert {"web", "image", "video"} <= set(modality["modality"])
    assert namespace["decision_counts"].num_rows >= 2  # SHIP, NO_SHIP and INCONCLUSIVE runs exist

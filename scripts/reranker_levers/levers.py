"""Lever experiments of issue 16 on VALIDATION queries only (the test split is never scored).

Every result is the mean NDCG@10 of the `page_valid` queries against their full hidden truth,
over the given seeds, for a model trained on the budgeted `page_train` labels (strategy `top`
unless --strategy) and early-stopped on the budgeted `page_valid` labels, exactly as the sweep
trains. One JSON line per (variant, budget) is printed and appended to --results.

    levers.py prepare [--noise 0.1 --disagreement 0.1] [--ds-start D --ds-end D]  # labels + a pages pickle
    levers.py run NAME --kind KIND [--budgets 0.1,0.2,0.3] [--seeds 0,1] [--labels noisy] [key=value ...]
    levers.py run NAME ... --train-queries 0.5    # a learning curve: half the page_train queries

KIND: `train` (TrainingConfig overrides), `smar_merge` (the shipped method; key=value override
the base config), `self_train` (teacher / student overrides as teacher.key=value and
student.key=value, pseudo-label options pseudo.key=value), `lightgbm`, `gbdt_smar`
(GbdtSmarConfig overrides). Environment: SMAR_WAREHOUSE, SMAR_ARTIFACTS as for the sweep;
PYTHONPATH=lib:.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smar.reranker.baselines import LightGBMConfig, train_lightgbm
from smar.reranker.gbdt_smar import GbdtSmarConfig, train_gbdt_smar
from smar.reranker.merge_selection import merge_config, pseudo_labelled, train_selected_merge
from smar.reranker.store import PageStore, restrict_to_budget
from smar.reranker.training import TrainingConfig, mean_ndcg, score_store, train_reranker
from smar.vocabulary import day_range

#: The sweep's 7 demo days; `prepare --ds-start/--ds-end` prepares another window.
DAYS = day_range("2026-10-26", "2026-11-01")
HERE = Path(__file__).resolve().parent
WORK = Path(os.environ.get("LEVERS_WORK", "/tmp/wh16"))


def pages_file(labels: str) -> Path:
    return WORK / f"pages-{labels}.pkl"


def load_pages(labels: str) -> tuple[Any, Any]:
    """The prepared pages of `prepare` and the validation queries' hidden truth."""
    data = pickle.loads(pages_file(labels).read_bytes())
    return data["pages"], data["validation_truth"]


def record_result(record: dict[str, Any]) -> None:
    """Print one result line and append it to levers_validation.jsonl (every lever script)."""
    print(json.dumps(record), flush=True)
    with (HERE / "levers_validation.jsonl").open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def prepare(noise: float, disagreement: float, days: list[str] = DAYS) -> None:
    """Simulate the full annotation (as the sweep does) and pickle the prepared pages with the
    validation queries' hidden truth."""
    from smar.cli.common import open_lakehouse
    from smar.reranker.inputs import read_truth_grades
    from smar.reranker.runs import prepare_pages
    from smar.reranker.store import grades_for_store
    from smar.reranker.sweep import SweepConfig, simulated_team, write_simulated_page_labels

    config = SweepConfig(ds_start=days[0], ds_end=days[-1], label_noise=noise, label_disagreement=disagreement)
    with open_lakehouse("levers") as lake:
        write_simulated_page_labels(
            lake.session,
            lake,
            ds_values=days,
            noise=noise,
            disagreement=disagreement,
            team=simulated_team(config) if config.noisy_labels else None,
        )
        pages = prepare_pages(lake, ds_values=days, annotators=config.label_annotators())
        truth = grades_for_store(pages.validation, read_truth_grades(lake, ds_values=days), by_query_only=True)
    name = "noisy" if config.noisy_labels else "oracle"
    pages_file(name).write_bytes(pickle.dumps({"pages": pages, "validation_truth": truth}))
    print(name, "train", pages.train.n_pages, "valid", pages.validation.n_pages, "test", pages.test.n_pages)


def budgeted(store: PageStore, strategy: str, budget: float, seed: int) -> PageStore:
    return store if budget >= 1.0 else restrict_to_budget(store, strategy=strategy, budget=budget, seed=seed)


def sample_queries(store: PageStore, share: float, seed: int) -> PageStore:
    """Every page of a seeded `share` of the store's queries (at least one query): the learning
    curve over training queries. A query keeps all its days, so a page's label budget is unchanged."""
    if share >= 1.0:
        return store
    queries = np.unique(store.query_id.astype(str))
    chosen = np.random.default_rng(10_000 + seed).permutation(queries)[: max(1, round(share * len(queries)))]
    return store.subset(np.flatnonzero(np.isin(store.query_id.astype(str), chosen)))


def self_train(
    train: PageStore, validation: PageStore, base: TrainingConfig, options: dict[str, dict[str, Any]]
) -> Any:
    """The self-training of smar_merge with overrides: a teacher (default the calibrated merge),
    pseudo-grades for the unlabelled candidates, a student (default the residual merge)."""
    teacher_config = merge_config(base, "calibrated_merge").replace(**options.get("teacher", {}))
    student_config = merge_config(base, "residual_merge").replace(**options.get("student", {}))
    pseudo = options.get("pseudo", {})
    teacher = train_reranker(train, validation, teacher_config, progress=False).model
    labelled = pseudo_labelled(train, score_store(teacher, train))
    if pseudo.get("unlabelled_weight") == 0:  # the student on the real labels only (a control)
        labelled = train
    return train_reranker(labelled, validation, student_config, progress=False).model


def run(
    name: str,
    kind: str,
    budgets: list[float],
    seeds: list[int],
    labels: str,
    strategy: str,
    options: dict,
    train_queries: float = 1.0,
) -> None:
    pages, truth = load_pages(labels)
    for budget in budgets:
        values, on_labels = [], []
        started = time.perf_counter()
        for seed in seeds:
            train = budgeted(sample_queries(pages.train, train_queries, seed), strategy, budget, seed)
            validation = budgeted(pages.validation, strategy, budget, seed + 1)
            base = TrainingConfig(seed=seed, device="cpu")
            if kind == "train":
                model = train_reranker(train, validation, base.replace(**options), progress=False).model
                scores = score_store(model, pages.validation)
            elif kind == "smar_merge":
                model = train_selected_merge(train, validation, base.replace(**options), progress=False).result.model
                scores = score_store(model, pages.validation)
            elif kind == "self_train":
                grouped: dict[str, dict[str, Any]] = {}
                for key, value in options.items():
                    group, _, field = key.partition(".")
                    grouped.setdefault(group, {})[field] = value
                scores = score_store(self_train(train, validation, base, grouped), pages.validation)
            elif kind == "lightgbm":
                scores = train_lightgbm(train, validation, LightGBMConfig(seed=seed, **options)).score(pages.validation)
            elif kind == "gbdt_smar":
                scores = train_gbdt_smar(train, validation, GbdtSmarConfig(seed=seed, **options)).score(
                    pages.validation
                )
            else:
                raise SystemExit(f"unknown kind {kind}")
            values.append(mean_ndcg(pages.validation, scores, truth))
            on_labels.append(mean_ndcg(validation, scores, validation.labels))
        record = {
            "name": name,
            "kind": kind,
            "labels": labels,
            "strategy": strategy,
            "budget": budget,
            **({"train_queries": train_queries} if train_queries < 1.0 else {}),
            "seeds": seeds,
            "valid_ndcg": round(float(np.mean(values)), 4),
            "per_seed": [round(value, 4) for value in values],
            "budgeted_valid_ndcg": [round(value, 4) for value in on_labels],
            "seconds": round(time.perf_counter() - started, 1),
            "options": options,
        }
        record_result(record)


def parse_value(text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return tuple(value) if isinstance(value, list) else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("prepare", "run"))
    parser.add_argument("name", nargs="?")
    parser.add_argument("overrides", nargs="*", help="key=value (JSON values)")
    parser.add_argument("--kind", default="train")
    parser.add_argument("--budgets", default="0.1,0.2,0.3")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--labels", default="oracle", choices=("oracle", "noisy"))
    parser.add_argument("--strategy", default="top")
    parser.add_argument("--train-queries", type=float, default=1.0, help="share of page_train queries kept")
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--disagreement", type=float, default=0.0)
    parser.add_argument("--ds-start", default=DAYS[0], help="prepare: first day of the window")
    parser.add_argument("--ds-end", default=DAYS[-1], help="prepare: last day of the window")
    args = parser.parse_intermixed_args()
    torch.set_num_threads(1)
    if args.command == "prepare":
        prepare(args.noise, args.disagreement, day_range(args.ds_start, args.ds_end))
        return
    options = {key: parse_value(value) for key, value in (item.split("=", 1) for item in args.overrides)}
    run(
        args.name,
        args.kind,
        [float(budget) for budget in args.budgets.split(",")],
        [int(seed) for seed in args.seeds.split(",")],
        args.labels,
        args.strategy,
        options,
        args.train_queries,
    )


if __name__ == "__main__":
    main()

"""Issue 16 levers on smar_merge's self-training, on VALIDATION queries only (test never scored).

Variants, each trained on the budgeted `page_train` labels (strategy `top`) and early-stopped on
the budgeted `page_valid` labels as the sweep trains, scored on the 78 `page_valid` queries
against their full hidden truth:

* `teacher`: the calibrated merge alone (smar_merge_cm);
* `shipped`: smar_merge as shipped (one teacher, isotonic pseudo-grades, one residual student);
* `click_teacher`: the pseudo-grades come from the teacher's score combined with the training
  pages' own click evidence (pooled over the window per (query, item): log clicks over expected
  examinations, the examination curve fitted on the exploration traffic as the replay fits it;
  mean log dwell of the clicks; whether it was ever clicked). The combination is a least-squares
  fit on the labelled candidates, then the same isotonic map onto the grades. Clicks of training
  queries only: the student never sees a click at serving time;
* `teacher_ens3`, `student_ens3`, `ens_teacher_ens_student`: three seeds' models, their
  standardised scores averaged (teachers for the pseudo-grades, students for serving);
* `round2`: a second round, the first student's scores grading the candidates for a new student.

    PYTHONPATH=lib python scripts/reranker_levers/self_training_variants.py --budgets 0.1,0.3 --seeds 0,1,2

Needs the prepared pages of `levers.py prepare` (LEVERS_WORK, default /tmp/wh16) and its
warehouse (SMAR_WAREHOUSE, read through smar.lake). One JSON line per budget is printed and appended to
levers_validation.jsonl.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from levers import load_pages, record_result
from numpy.typing import NDArray

from smar.lake import Lakehouse
from smar.propensities import estimate_examination_curve
from smar.reranker.merge_selection import merge_config, pseudo_labelled
from smar.reranker.store import PageStore, restrict_to_budget
from smar.reranker.training import TrainingConfig, mean_ndcg, score_store, train_reranker

ENSEMBLE = 3


def click_evidence() -> pd.DataFrame:
    """Per (query_id, item_id) over the window: log((clicks + 1) / (expected examinations +
    1 / mean CTR)) (smoothed towards the mean), mean log dwell of its clicks, ever clicked."""
    columns = ["ds", "request_id", "query_id", "item_id", "modality", "position", "production_score", "clicked",
               "dwell_seconds"]  # fmt: skip
    logs = Lakehouse(None).read_arrow("bronze.search_logs").select(columns).to_pandas()
    curve, _, _ = estimate_examination_curve(logs, n_bootstrap=100)
    gamma = curve.examination
    logs["examined"] = gamma[np.clip(logs["position"].to_numpy() - 1, 0, len(gamma) - 1)]
    logs["log_dwell"] = np.log(logs["dwell_seconds"])
    mean_ctr = logs["clicked"].sum() / logs["examined"].sum()
    stats = logs.groupby(["query_id", "item_id"]).agg(
        clicks=("clicked", "sum"), examined=("examined", "sum"), log_dwell=("log_dwell", "mean")
    )
    stats["log_coec"] = np.log((stats["clicks"] + 1.0) / (stats["examined"] + 1.0 / mean_ctr))
    return stats.reset_index()


def click_matrix(store: PageStore, evidence: pd.DataFrame) -> NDArray[np.float64]:
    frame = store.item_frame()[["query_id", "item_id"]].merge(evidence, on=["query_id", "item_id"], how="left")
    # Every candidate was shown at least once (pages are built from the logs).
    if frame["log_coec"].isna().any():
        raise ValueError("a candidate has no logged impression")
    clicked = frame["log_dwell"].notna().to_numpy()
    return np.column_stack(
        [
            frame["log_coec"].to_numpy(),
            np.where(clicked, frame["log_dwell"].to_numpy(), 0.0),
            clicked.astype(np.float64),
        ]
    )


def standardised_mean(scores: list[NDArray[np.floating]]) -> NDArray[np.float32]:
    return np.mean([(s - s.mean()) / (s.std() + 1e-9) for s in scores], axis=0).astype(np.float32)


Row = dict[str, float]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", default="oracle", choices=("oracle", "noisy"))
    parser.add_argument("--budgets", default="0.1,0.3")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--early-stopping", action="store_true", help="only shipped and pseudo_validation")
    parser.add_argument("--rounding", action="store_true", help="only the rounded pseudo-grades")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pages, truth = load_pages(args.labels)
    seeds = [int(s) for s in args.seeds.split(",")]
    # Only the full set of variants uses the clicks: the other modes need not read the logs.
    evidence = None if args.rounding or args.early_stopping else click_evidence()

    def fit(store: PageStore, validation: PageStore, seed: int, candidate: str) -> torch.nn.Module:
        config = merge_config(TrainingConfig(seed=seed, device="cpu"), candidate)
        return train_reranker(store, validation, config, progress=False).model

    def ndcg(model: torch.nn.Module) -> float:
        return ndcg_of(score_store(model, pages.validation))

    def ndcg_of(scores: NDArray[np.floating]) -> float:
        return round(mean_ndcg(pages.validation, np.asarray(scores, np.float32), truth), 4)

    def rounding(train: PageStore, validation: PageStore, seed: int) -> Row:
        pseudo = pseudo_labelled(train, score_store(fit(train, validation, seed, "calibrated_merge"), train)).labels
        row = {}
        for name, steps in (("rounded", 1.0), ("halves", 2.0)):
            grades = np.where(train.label_mask, train.labels, np.round(steps * pseudo) / steps)
            row[name] = ndcg(fit(train.with_labels(grades.astype(np.float32)), validation, seed, "residual_merge"))
        return row

    def early_stopping(train: PageStore, validation: PageStore, seed: int) -> Row:
        teacher = fit(train, validation, seed, "calibrated_merge")
        pseudo_train = pseudo_labelled(train, score_store(teacher, train))
        pseudo_valid = pseudo_labelled(validation, score_store(teacher, validation))
        return {
            "shipped": ndcg(fit(pseudo_train, validation, seed, "residual_merge")),
            "pseudo_validation": ndcg(fit(pseudo_train, pseudo_valid, seed, "residual_merge")),
        }

    def variants(train: PageStore, validation: PageStore, seed: int) -> Row:
        ensemble_seeds = [seed + 100 * k for k in range(ENSEMBLE)]
        teachers = [fit(train, validation, s, "calibrated_merge") for s in ensemble_seeds]
        on_train = [score_store(t, train) for t in teachers]
        students = [fit(pseudo_labelled(train, on_train[0]), validation, s, "residual_merge") for s in ensemble_seeds]
        ensemble_pseudo = pseudo_labelled(train, standardised_mean(on_train))
        ensemble_students = [fit(ensemble_pseudo, validation, s, "residual_merge") for s in ensemble_seeds]
        second = fit(pseudo_labelled(train, score_store(students[0], train)), validation, seed, "residual_merge")
        assert evidence is not None
        labelled = train.label_mask
        design = np.column_stack([np.ones(train.n_items), click_matrix(train, evidence), on_train[0]])
        coefficients, *_ = np.linalg.lstsq(design[labelled], train.labels[labelled], rcond=None)
        click_pseudo = pseudo_labelled(train, (design @ coefficients).astype(np.float32))

        def ensemble(models: list[torch.nn.Module]) -> float:
            return ndcg_of(standardised_mean([score_store(m, pages.validation) for m in models]))

        return {
            "teacher": ndcg(teachers[0]),
            "teacher_ens3": ensemble(teachers),
            "shipped": ndcg(students[0]),
            "student_ens3": ensemble(students),
            "ens_teacher_ens_student": ensemble(ensemble_students),
            "round2": ndcg(second),
            "click_teacher": ndcg(fit(click_pseudo, validation, seed, "residual_merge")),
        }

    if args.rounding:
        name, measure = "self_training_variants rounding", rounding
    elif args.early_stopping:
        name, measure = "self_training_variants early_stopping", early_stopping
    else:
        name, measure = "self_training_variants", variants
    for budget in [float(b) for b in args.budgets.split(",")]:
        results: dict[str, list[float]] = {}
        started = time.perf_counter()
        for seed in seeds:
            train = restrict_to_budget(pages.train, strategy="top", budget=budget, seed=seed)
            validation = restrict_to_budget(pages.validation, strategy="top", budget=budget, seed=seed + 1)
            row = measure(train, validation, seed)
            for variant, value in row.items():
                results.setdefault(variant, []).append(value)
            print(budget, seed, row, flush=True)
        record_result(
            {
                "name": name,
                "labels": args.labels,
                "strategy": "top",
                "budget": budget,
                "seeds": seeds,
                "valid_ndcg": {variant: round(float(np.mean(values)), 4) for variant, values in results.items()},
                "per_seed": results,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )


if __name__ == "__main__":
    main()

"""Issue 16 levers on where the labels (and pseudo-labels) of smar_merge go, on VALIDATION queries
only (the test split is never scored).

`strategies`: smar_merge trained on labels placed by `top` (shipped) or by two "top plus deeper"
placements at the same count per (page, modality) (so at equal annotation cost):

* `top_deep`: the first ceil(c / 2) items of the list, the other c - ceil(c / 2) at the centres
  of equal strata of the rest of the list (as `stratified` does, below the top part);
* `top_random_deep`: the same top part, the deeper items drawn uniformly from the rest.

With c = 1 (every image, video and answer list at 10%) both equal `top`.

`page_residuals`: a diagnostic of the pseudo-grades, not a model. The teacher's isotonic
pseudo-grade of an unlabelled candidate is moved by the shrunk mean residual (label - pseudo-grade)
of its page's labelled candidates (`page`) or of its page and modality's (`page_modality`),
shrinkage n / (n + k); it prints the correlation and mean absolute error of the pseudo-grades of
the unlabelled training candidates against their true grades, and the NDCG@10 of the
pseudo-labelled training pages.

    PYTHONPATH=lib python scripts/reranker_levers/label_placement.py strategies --budgets 0.1,0.2,0.3
    PYTHONPATH=lib python scripts/reranker_levers/label_placement.py page_residuals

Needs the prepared pages of `levers.py prepare` (LEVERS_WORK, default /tmp/wh16). `strategies`
prints one JSON line per budget and appends it to levers_validation.jsonl.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from levers import load_pages, record_result
from numpy.typing import NDArray

from smar.annotation.strategies import label_count
from smar.reranker.merge_selection import isotonic_fit, merge_config, train_selected_merge
from smar.reranker.store import PageStore, restrict_to_budget
from smar.reranker.training import TrainingConfig, mean_ndcg, score_store, train_reranker

PLACEMENTS = ("top", "top_deep", "top_random_deep")


def deeper_positions(placement: str, n_items: int, budget: float, rng: np.random.Generator) -> NDArray[np.int64]:
    """Sorted 0-based positions of one modality's list of `n_items` for a top-plus-deeper placement
    (a `restrict_to_budget` chooser)."""
    count = label_count(n_items, budget)
    top = math.ceil(count / 2)
    deep, rest = count - top, n_items - top
    if deep == 0:
        return np.arange(count, dtype=np.int64)
    if placement == "top_deep":
        edges = (np.arange(deep + 1) * rest) // deep
        extra = top + (edges[:-1] + edges[1:] - 1) // 2
    else:
        extra = top + rng.choice(rest, size=deep, replace=False)
    return np.sort(np.concatenate([np.arange(top), extra]).astype(np.int64))


def place_labels(store: PageStore, placement: str, budget: float, seed: int) -> PageStore:
    if placement == "top":
        return restrict_to_budget(store, strategy="top", budget=budget, seed=seed)
    return restrict_to_budget(store, strategy=placement, budget=budget, seed=seed, choose=deeper_positions)


def strategies(pages: Any, truth: NDArray[np.floating], budgets: list[float], seeds: list[int]) -> None:
    for budget in budgets:
        results: dict[str, list[float]] = {}
        for seed in seeds:
            for placement in PLACEMENTS:
                train = place_labels(pages.train, placement, budget, seed)
                validation = place_labels(pages.validation, placement, budget, seed + 1)
                config = TrainingConfig(seed=seed, device="cpu")
                model = train_selected_merge(train, validation, config, progress=False).result.model
                value = round(mean_ndcg(pages.validation, score_store(model, pages.validation), truth), 4)
                results.setdefault(placement, []).append(value)
                print(budget, seed, placement, value, int(train.label_mask.sum()), "labels", flush=True)
        record_result(
            {
                "name": "label_placement strategies",
                "kind": "smar_merge",
                "budget": budget,
                "seeds": seeds,
                "valid_ndcg": {name: round(float(np.mean(values)), 4) for name, values in results.items()},
                "per_seed": results,
            }
        )


def page_residuals(pages: Any, budgets: list[float], seeds: list[int]) -> None:
    for budget in budgets:
        for seed in seeds:
            train = restrict_to_budget(pages.train, strategy="top", budget=budget, seed=seed)
            validation = restrict_to_budget(pages.validation, strategy="top", budget=budget, seed=seed + 1)
            config = merge_config(TrainingConfig(seed=seed, device="cpu"), "calibrated_merge")
            teacher = train_reranker(train, validation, config, progress=False).model
            scores = score_store(teacher, train).astype(np.float64)
            labelled, truth = train.label_mask, pages.train.labels
            xs, fitted = isotonic_fit(scores[labelled], train.labels[labelled])
            pseudo = np.interp(scores, xs, fitted)
            residual = pd.Series(np.where(labelled, train.labels - pseudo, 0.0))
            counts = pd.Series(labelled.astype(np.float64))
            groups = {
                "page": train.page_of_item,
                "page_modality": train.page_of_item * 8 + train.modality_id,
            }
            variants: list[tuple[str, float, NDArray[np.float64]]] = [("none", 0.0, pseudo)]
            for name, group in groups.items():
                for shrinkage in (0.5, 1.0, 2.0):
                    shift = (residual.groupby(group).sum() / (counts.groupby(group).sum() + shrinkage)).reindex(group)
                    variants.append((name, shrinkage, np.clip(pseudo + shift.to_numpy(), 0.0, 4.0)))
            unlabelled = ~labelled
            for name, shrinkage, grades in variants:
                graded = np.where(labelled, train.labels, grades)
                print(
                    f"budget {budget} seed {seed} {name:13s} k={shrinkage}: "
                    f"corr {np.corrcoef(graded[unlabelled], truth[unlabelled])[0, 1]:.3f} "
                    f"mae {np.abs(graded[unlabelled] - truth[unlabelled]).mean():.3f} "
                    f"pseudo-labelled train pages NDCG@10 {mean_ndcg(pages.train, graded.astype(np.float32), truth):.4f}",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("strategies", "page_residuals"))
    parser.add_argument("--budgets", default="0.1,0.2,0.3")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pages, truth = load_pages("oracle")
    budgets = [float(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.mode == "strategies":
        strategies(pages, truth, budgets, seeds)
    else:
        page_residuals(pages, budgets, seeds)


if __name__ == "__main__":
    main()

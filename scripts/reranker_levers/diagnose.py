"""Where a model's page quality comes from, on the validation queries (never test): its NDCG@10,
and the NDCG@10 of the page that keeps the model's choice of modality for every slot but fills
each slot with that modality's next item in single-modal order (its interleaving alone). The gap
is what the model gains (or loses) by reordering items inside a modality.

    diagnose.py MODEL [--budget 0.1] [--seeds 0,1]      MODEL: sft | smar_merge | teacher
"""

from __future__ import annotations

import argparse
import json
import pickle

import numpy as np
import torch
from levers import budgeted, pages_file

from smar.reranker.ceiling import ceiling_ndcg_per_page
from smar.reranker.merge_selection import merge_config, train_selected_merge
from smar.reranker.store import PageStore
from smar.reranker.training import TrainingConfig, mean_ndcg, score_store, train_reranker


def interleaving_only(store: PageStore, scores: np.ndarray) -> np.ndarray:
    """[N] scores of the page with the model's modality per slot, items in single-modal order."""
    out = np.zeros(store.n_items, dtype=np.float32)
    for page in range(store.n_pages):
        start, stop = int(store.offsets[page]), int(store.offsets[page + 1])
        modality = store.modality_id[start:stop]
        ranks = store.rank_in_modality[start:stop]
        slots = modality[np.argsort(-scores[start:stop], kind="stable")]
        queues = {m: list(np.flatnonzero(modality == m)[np.argsort(ranks[modality == m])]) for m in np.unique(modality)}
        order = [queues[m].pop(0) for m in slots]
        page_scores = np.empty(stop - start, dtype=np.float32)
        page_scores[np.asarray(order)] = np.arange(stop - start, 0, -1)
        out[start:stop] = page_scores
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", choices=("sft", "smar_merge", "teacher"))
    parser.add_argument("--budget", type=float, default=0.1)
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = pickle.loads(pages_file("oracle").read_bytes())
    pages, truth = data["pages"], data["validation_truth"]
    valid = pages.validation
    ceiling = float(np.nanmean(ceiling_ndcg_per_page(valid, truth)))
    for seed in (int(s) for s in args.seeds.split(",")):
        base = TrainingConfig(seed=seed, device="cpu")
        budget = 1.0 if args.model == "sft" else args.budget
        train = budgeted(pages.train, "top", budget, seed)
        validation = budgeted(valid, "top", budget, seed + 1)
        if args.model == "sft":
            model = train_reranker(train, validation, base.replace(objective="page_loss_only"), progress=False).model
        elif args.model == "teacher":
            model = train_reranker(train, validation, merge_config(base, "calibrated_merge"), progress=False).model
        else:
            model = train_selected_merge(train, validation, base, progress=False).result.model
        scores = score_store(model, valid)
        record = {
            "model": args.model,
            "budget": budget,
            "seed": seed,
            "ndcg": round(mean_ndcg(valid, scores, truth), 4),
            "interleaving_only": round(mean_ndcg(valid, interleaving_only(valid, scores), truth), 4),
            "single_modal_order_kept": round(mean_ndcg(valid, interleaving_only(valid, scores), truth), 4)
            == round(mean_ndcg(valid, scores, truth), 4),
            "merge_ceiling": round(ceiling, 4),
        }
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()

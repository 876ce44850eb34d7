"""A torch `IterableDataset` over the pages of a `PageStore`, and the collate function that pads
them into `[pages, items, ...]` batches with masks.

Order and sharding: each epoch has one page order, a permutation drawn from
`numpy.random.default_rng([seed, epoch])` (or store order without shuffling). DataLoader worker
w of W takes the pages at positions w, w + W, w + 2W, ... of that order (`get_worker_info`),
so across workers every page is yielded exactly once per epoch, and the same (seed, epoch) gives
the same batches whatever the machine. Set the epoch with `set_epoch` before iterating (worker
processes get a copy of the dataset when the DataLoader's iterator starts).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from smar.reranker.store import PageStore


class PageBatch(NamedTuple):
    """A padded batch. Per item: `[pages, items]` or `[pages, items, features]`; per page:
    `[pages]` or `[pages, features]`. Padding: item_mask False, label_mask False, zeros."""

    page_index: Tensor  # [pages] long, index of the page in its store
    modality_id: Tensor  # [pages, items] long
    numeric: Tensor  # [pages, items, F] float
    text_embedding: Tensor  # [pages, items, T] float
    visual_embedding: Tensor  # [pages, items, V] float
    single_modal_score: Tensor  # [pages, items] float
    labels: Tensor  # [pages, items] float, 0 where unlabelled
    label_mask: Tensor  # [pages, items] bool, True where a page label exists
    item_mask: Tensor  # [pages, items] bool, True on real items
    query_embedding: Tensor  # [pages, T] float
    user_features: Tensor  # [pages, U] float

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PageBatch:
        """The batch on `device`."""
        return PageBatch(*(tensor.to(device, non_blocking=non_blocking) for tensor in self))


def epoch_order(n_pages: int, *, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The page order of one epoch: a permutation seeded by (seed, epoch), or 0..n-1."""
    if not shuffle:
        return np.arange(n_pages)
    return np.random.default_rng([seed, epoch]).permutation(n_pages)


class PageDataset(IterableDataset):
    """Yields the pages of `store` (dicts of numpy arrays, see `PageStore.page`), each page once
    per epoch across all DataLoader workers, in the order of `epoch_order`."""

    def __init__(self, store: PageStore, *, seed: int = 0, shuffle: bool = True, epoch: int = 0) -> None:
        super().__init__()
        self.store = store
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration follows."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.store.n_pages

    def shard(self, worker_id: int, num_workers: int) -> np.ndarray:
        """The page indices worker `worker_id` of `num_workers` yields this epoch, in order."""
        order = epoch_order(self.store.n_pages, seed=self.seed, epoch=self.epoch, shuffle=self.shuffle)
        return order[worker_id::num_workers]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = get_worker_info()
        worker_id, num_workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        for index in self.shard(worker_id, num_workers):
            yield self.store.page(int(index))


def collate_pages(pages: Sequence[dict[str, Any]]) -> PageBatch:
    """Pad a list of pages to the longest one: `[pages, max_items, ...]` with masks."""
    if not pages:
        raise ValueError("cannot collate an empty list of pages")
    count = len(pages)
    longest = max(len(page["modality_id"]) for page in pages)
    first = pages[0]
    numeric_dim = first["numeric"].shape[1]
    text_dim = first["text_embedding"].shape[1]
    visual_dim = first["visual_embedding"].shape[1]
    modality_id = np.zeros((count, longest), dtype=np.int64)
    numeric = np.zeros((count, longest, numeric_dim), dtype=np.float32)
    text = np.zeros((count, longest, text_dim), dtype=np.float32)
    visual = np.zeros((count, longest, visual_dim), dtype=np.float32)
    single_modal = np.zeros((count, longest), dtype=np.float32)
    labels = np.zeros((count, longest), dtype=np.float32)
    label_mask = np.zeros((count, longest), dtype=bool)
    item_mask = np.zeros((count, longest), dtype=bool)
    for row, page in enumerate(pages):
        size = len(page["modality_id"])
        modality_id[row, :size] = page["modality_id"]
        numeric[row, :size] = page["numeric"]
        text[row, :size] = page["text_embedding"]
        visual[row, :size] = page["visual_embedding"]
        single_modal[row, :size] = page["single_modal_score"]
        page_labels = page["labels"]
        labelled = ~np.isnan(page_labels)
        labels[row, :size] = np.where(labelled, page_labels, 0.0)
        label_mask[row, :size] = labelled
        item_mask[row, :size] = True
    return PageBatch(
        page_index=torch.as_tensor([int(page["page_index"]) for page in pages], dtype=torch.long),
        modality_id=torch.from_numpy(modality_id),
        numeric=torch.from_numpy(numeric),
        text_embedding=torch.from_numpy(text),
        visual_embedding=torch.from_numpy(visual),
        single_modal_score=torch.from_numpy(single_modal),
        labels=torch.from_numpy(labels),
        label_mask=torch.from_numpy(label_mask),
        item_mask=torch.from_numpy(item_mask),
        query_embedding=torch.from_numpy(np.stack([page["query_embedding"] for page in pages]).astype(np.float32)),
        user_features=torch.from_numpy(np.stack([page["user_features"] for page in pages]).astype(np.float32)),
    )


def page_loader(
    store: PageStore,
    *,
    batch_pages: int,
    seed: int = 0,
    shuffle: bool = True,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader of `PageBatch`es over `store` (call `loader.dataset.set_epoch(e)` per epoch)."""
    dataset = PageDataset(store, seed=seed, shuffle=shuffle)
    return DataLoader(
        dataset,
        batch_size=batch_pages,
        collate_fn=collate_pages,
        num_workers=num_workers,
        pin_memory=pin_memory,
        # Worker seeds come from this generator, not torch's global RNG, so adding workers
        # does not change the dropout masks the model draws.
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )

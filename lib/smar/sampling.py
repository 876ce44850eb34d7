"""Bounded query samples, so that a trainer on the driver holds thousands of queries' rows, not days.

The trainers (single-modal rankers, the page reranker) read the Delta tables at pinned versions
through delta-rs and `pyarrow.dataset` (docs/architecture.md, "Engines"): they see exactly the
snapshot they record, with or without a Spark session. What kept them from scaling was reading
the whole window into pandas and filtering afterwards. Now they:

1. stream one column, `query_id`, of the pinned snapshot in Arrow batches
   (`sample_query_ids`), keeping per split at most `max_per_split` queries: the ones with the
   smallest salted sha256, so the sample is deterministic, the same on every engine and every
   rerun, and uncorrelated with the split buckets; memory is O(max_per_split), whatever the
   window's size;
2. read only those queries' rows, with `query_id IN (...)` pushed into the scan
   (`isin_filter`).

When the window holds no more queries than the cap, nothing is left out and the result is
exactly the unsampled one. When the cap binds, `QuerySample.capped` says which splits were
sampled and the trainer logs it; nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from smar.splits import query_split

log = logging.getLogger(__name__)

#: Salt of the sample's order: independent of the split rule's hash (which only reads 8 hex digits).
SAMPLE_SALT = b"smar-query-sample:"
#: Arrow batch size of the `query_id` scan (rows).
SCAN_BATCH_ROWS = 1 << 20


def sample_key(query_id: str) -> int:
    """The order a sample keeps queries in: the smallest keys first."""
    return int.from_bytes(hashlib.sha256(SAMPLE_SALT + query_id.encode("utf-8")).digest(), "big")


@dataclass(frozen=True)
class QuerySample:
    """The kept query ids per split (sorted), and the splits where the cap left queries out."""

    query_ids: dict[str, tuple[str, ...]]
    capped: tuple[str, ...] = field(default=())

    def ids(self) -> list[str]:
        """The kept ids of every split, sorted."""
        return sorted({query for ids in self.query_ids.values() for query in ids})

    def describe(self) -> dict[str, Any]:
        """A JSON-able record for run metadata: counts per split and which were capped."""
        return {
            "queries": {split: len(ids) for split, ids in sorted(self.query_ids.items())},
            "capped": list(self.capped),
        }


def sample_query_ids(batches: Iterable[pa.RecordBatch], *, splits: Sequence[str], max_per_split: int) -> QuerySample:
    """At most `max_per_split` distinct `query_id`s of each split in `splits`, from `batches`
    (record batches holding a `query_id` column), the ones with the smallest `sample_key`."""
    if max_per_split < 1:
        raise ValueError(f"max_per_split must be at least 1, got {max_per_split}")
    wanted = set(splits)
    # Per split a max-heap (negated keys) of the kept queries: the root is the first to leave.
    heaps: dict[str, list[tuple[int, str]]] = {split: [] for split in wanted}
    kept: dict[str, set[str]] = {split: set() for split in wanted}
    capped: set[str] = set()
    for batch in batches:
        for query_id in pc.unique(batch.column("query_id")).to_pylist():
            if query_id is None:
                continue
            split = query_split(query_id)
            if split not in wanted or query_id in kept[split]:
                continue
            key = -sample_key(query_id)  # negated: heapq's root is then the largest sample key
            heap = heaps[split]
            if len(heap) < max_per_split:
                heapq.heappush(heap, (key, query_id))
                kept[split].add(query_id)
            elif key > heap[0][0]:
                _, evicted = heapq.heapreplace(heap, (key, query_id))
                kept[split].discard(evicted)
                kept[split].add(query_id)
                capped.add(split)
            else:
                capped.add(split)
    return QuerySample({split: tuple(sorted(kept[split])) for split in sorted(wanted)}, tuple(sorted(capped)))


def sample_dataset_queries(
    dataset: Any, *, ds_values: Sequence[str], splits: Sequence[str], max_per_split: int, what: str
) -> QuerySample:
    """`sample_query_ids` over the `query_id` column of a pyarrow dataset (a pinned Delta
    snapshot, `Lakehouse.dataset`) restricted to `ds IN ds_values`; logs a capped split."""
    batches = dataset.to_batches(
        columns=["query_id"], filter=pc.field("ds").isin(list(ds_values)), batch_size=SCAN_BATCH_ROWS
    )
    sample = sample_query_ids(batches, splits=splits, max_per_split=max_per_split)
    for split in sample.capped:
        log.warning(
            "%s: split %s holds more than %d queries in %s; a deterministic hash sample of %d is used",
            what, split, max_per_split, list(ds_values), max_per_split,
        )  # fmt: skip
    return sample


def sample_key_column(query_id: Column) -> Column:
    """`sample_key` as a Spark expression: the lowercase hex sha256, whose text order is the
    numeric order of the digest, so Spark keeps the same queries as `sample_query_ids`."""
    return F.sha2(F.concat(F.lit(SAMPLE_SALT.decode("ascii")), query_id), 256)


def sample_frame_queries(frame: DataFrame, *, max_queries: int) -> tuple[list[str] | None, int]:
    """At most `max_queries` distinct `query_id`s of a Spark frame, chosen in Spark by
    `sample_key_column` (only they reach the driver); None when all fit. Also the distinct count."""
    queries = frame.select("query_id").distinct()
    total = queries.count()
    if total <= max_queries:
        return None, total
    kept = queries.orderBy(sample_key_column(F.col("query_id")), "query_id").limit(max_queries)
    return sorted(row["query_id"] for row in kept.collect()), total


def isin_filter(column: str, values: Iterable[str]) -> pc.Expression:
    """`column IN` the distinct non-null `values` (sorted), pushed into a scan of a pinned
    snapshot so that it reads only the rows a sample names (`value == value` drops NaN)."""
    return pc.field(column).isin(sorted({value for value in values if value is not None and value == value}))

"""Query splits, fixed by a hash of the query id so every job and every day agrees.

| split | share | used for |
|---|---|---|
| `single_modal_train` | 40% | training the single-modal rankers from clicks (step 1) |
| `page_train` | 30% | budgeted page annotation; trains the page reranker (steps 2-3) |
| `page_valid` | 10% | annotated at the same budget; early stopping and tuning |
| `test` | 20% | held out: fully labelled evaluation set and offline replay (step 4) |

The single-modal rankers never see a query that is later annotated or evaluated.
"""

from __future__ import annotations

import hashlib

from pyspark.sql import Column
from pyspark.sql import functions as F

from smar.vocabulary import SPLITS, Split

#: Each split's upper bucket bound (exclusive), in `SPLITS` order.
SPLIT_BOUNDS: tuple[tuple[Split, int], ...] = tuple(zip(SPLITS, (40, 70, 80, 100), strict=True))


def query_bucket(query_id: str) -> int:
    """0-99, from the first 8 hex digits of sha256(query_id)."""
    return int(hashlib.sha256(query_id.encode("utf-8")).hexdigest()[:8], 16) % 100


def query_split(query_id: str) -> Split:
    """The split a query belongs to."""
    bucket = query_bucket(query_id)
    for name, upper in SPLIT_BOUNDS:
        if bucket < upper:
            return name
    raise AssertionError("unreachable: bounds end at 100")


def query_split_column(query_id: Column) -> Column:
    """The same split as a Spark expression (sha2 is native on both engines)."""
    bucket = F.conv(F.substring(F.sha2(query_id, 256), 1, 8), 16, 10).cast("long") % 100
    (first_name, first_upper), *rest = SPLIT_BOUNDS
    expression = F.when(bucket < first_upper, F.lit(first_name))
    for name, upper in rest:
        expression = expression.when(bucket < upper, F.lit(name))
    return expression


def describe_splits() -> dict[str, str]:
    """A JSON-able record of the split rule, stored with every model."""
    lower = 0
    described = {"rule": "bucket = int(sha256(query_id)[:8], 16) % 100"}
    for name, upper in SPLIT_BOUNDS:
        described[name] = f"{lower} <= bucket < {upper}"
        lower = upper
    return described

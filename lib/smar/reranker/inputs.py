"""Per-page inputs of the whole-page reranker, read from Delta tables at pinned versions.

Reading: every table is opened with `deltalake` at a recorded version and scanned through
`pyarrow.dataset` (column projection and a `ds` filter pushed down), never through Spark, so a
trainer sees exactly the snapshot it records (docs/architecture.md, "Engines"). `pin_versions` takes the versions;
`PageStore.input_versions` carries them into the run registry.

A page is the unit f(u, q, i) ranks. Two kinds:

* `"query"`: the candidate page of one query on one day, as annotated (`silver.page_labels`):
  the union of the items its requests showed that day. An item's single-modal score is its mean
  over those impressions (identical on generator data), its position the slot it was shown in
  most often; rank and percentile are recomputed
  within (page, modality) with the contract's rule (score desc, item_id asc; (n - rank)/(n - 1),
  1 when n = 1); user features are the mean over the page's requests (an annotated page has no
  single user). Used for training, validation and evaluation.
* `"request"`: one logged request (the page one user saw), for replay scoring. Rank and
  percentile come from `silver.single_modal_scores` as written.

Per item (`NUMERIC_FEATURE_NAMES`, in that column order): the raw single-modal score, its
within-modality percentile and z-score on the page, 1/rank_in_modality, the query-item MiniLM
cosine, whether a visual embedding exists, and the 7 engagement statistics of
`smar.single_modal.rankers.features`. Besides: the modality id, the item text embedding and the visual
embedding (projected by the model), the page's query embedding and user features.

Storage: `smar.reranker.store.PageStore`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from numpy.typing import NDArray

from smar.lake import Lakehouse
from smar.reranker.store import MODALITY_INDEX, NUMERIC_FEATURE_NAMES, PageStore, PageUnit
from smar.reranker.text_cache import DEFAULT_ENCODER_NAME, TextEncodeFunction, encode_texts_cached, text_encoder
from smar.sampling import isin_filter
from smar.single_modal.rankers.encoder import TEXT_EMBEDDING_DIM
from smar.single_modal.rankers.features import engagement_features, item_texts
from smar.splits import query_split

log = logging.getLogger(__name__)

#: The tables a reranker run reads; their versions go into `gold.reranker_runs.input_versions`.
INPUT_TABLES: tuple[str, ...] = (
    "silver.single_modal_scores",
    "bronze.search_logs",
    "bronze.items",
    "bronze.users",
    "silver.page_labels",
    "silver.annotation_tasks",
    "silver.iso_label_anchors",
)


# ------------------------------------------------------------------------------- pinned reads


def pin_versions(lake: Lakehouse, tables: Sequence[str] = INPUT_TABLES) -> dict[str, int]:
    """The current Delta version of each existing table among `tables` (absent ones left out)."""
    return {table: lake.version(table) for table in tables if lake.exists(table)}


def read_pinned(
    lake: Lakehouse,
    table: str,
    version: int,
    *,
    columns: Sequence[str] | None = None,
    ds_values: Sequence[str] | None = None,
    filter_expression: pc.Expression | None = None,
) -> pa.Table:
    """`table` at Delta `version` through deltalake -> pyarrow.dataset, with the column projection
    and a `ds IN ds_values` filter pushed into the scan."""
    dataset: pads.Dataset = lake.dataset(table, version)
    expression = filter_expression
    if ds_values is not None:
        in_days = pc.field("ds").isin(list(ds_values))
        expression = in_days if expression is None else expression & in_days
    return dataset.to_table(columns=list(columns) if columns else None, filter=expression)


def _require_version(versions: Mapping[str, int], table: str) -> int:
    if table not in versions:
        raise KeyError(f"no pinned version for {table}; pin it with pin_versions() (does the table exist?)")
    return versions[table]


# --------------------------------------------------------------------------- page assembly


def _within_page_modality_stats(
    page_codes: NDArray[np.int64], modality_ids: NDArray[np.int64], scores: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """z-score of `scores` within (page, modality) (population std; 0 when std is 0 or n = 1)
    and the group size n."""
    frame = pd.DataFrame({"page": page_codes, "modality": modality_ids, "score": scores})
    grouped = frame.groupby(["page", "modality"], sort=False)["score"]
    mean = grouped.transform("mean").to_numpy()
    std = grouped.transform(lambda values: values.std(ddof=0)).to_numpy()
    size = grouped.transform("size").to_numpy().astype(np.float64)
    zscore = np.where(std > 0, (scores - mean) / np.where(std > 0, std, 1.0), 0.0)
    return zscore, size


def rank_within_page_modality(frame: pd.DataFrame, page_column: str) -> pd.DataFrame:
    """Adds `rank_in_modality` (1 = best; score desc, item_id asc) and
    `score_percentile_in_modality` ((n - rank)/(n - 1), 1 when n = 1) within (page, modality)."""
    ordered = frame.sort_values(
        [page_column, "modality", "score", "item_id"], ascending=[True, True, False, True], kind="stable"
    )
    ordered["rank_in_modality"] = ordered.groupby([page_column, "modality"], sort=False).cumcount() + 1
    size = ordered.groupby([page_column, "modality"], sort=False)["item_id"].transform("size")
    ordered["score_percentile_in_modality"] = np.where(
        size > 1, (size - ordered["rank_in_modality"]) / (size - 1).clip(lower=1), 1.0
    )
    return ordered.sort_index()


def _user_matrix(users: pd.DataFrame, user_dim: int | None) -> tuple[dict[tuple[str, str], NDArray[np.float32]], int]:
    """(ds, user_id) -> dense features, padded/truncated to one width (the widest seen, or
    `user_dim`). Rows with null features are left out (they become zeros)."""
    vectors: dict[tuple[str, str], NDArray[np.float32]] = {}
    widest = 0
    for ds, user_id, dense in zip(users["ds"], users["user_id"], users["dense_features"], strict=True):
        if dense is None:
            continue
        values = np.nan_to_num(np.asarray(dense, dtype=np.float32))
        vectors[(ds, user_id)] = values
        widest = max(widest, len(values))
    width = widest if user_dim is None else user_dim
    fitted = {}
    for key, values in vectors.items():
        row = np.zeros(width, dtype=np.float32)
        row[: min(width, len(values))] = values[:width]
        fitted[key] = row
    return fitted, width


def build_page_store(
    lake: Lakehouse,
    versions: Mapping[str, int],
    *,
    ds_values: Sequence[str],
    page_unit: PageUnit = "query",
    query_splits: Sequence[str] | None = None,
    query_ids: Sequence[str] | None = None,
    with_text: bool = True,
    encode: TextEncodeFunction | None = None,
    encoder_name: str = DEFAULT_ENCODER_NAME,
    embedding_cache: str | None = None,
    visual_dim: int | None = None,
    user_dim: int | None = None,
) -> PageStore:
    """Assemble the pages of days `ds_values` from `silver.single_modal_scores`,
    `bronze.search_logs`, `bronze.items` and (if pinned) `bronze.users` at `versions`.

    `query_splits` / `query_ids` restrict the queries. `with_text=False` skips MiniLM (zero
    text columns; for fusions). `visual_dim` / `user_dim` force widths (a trained model's);
    default: read from the data. Labels are all NaN; see `attach_page_labels`.
    """
    # Known queries: only their rows are read (`query_id IN` pushed into every scan), and only
    # the users and catalogue rows those rows name.
    only_queries = isin_filter("query_id", query_ids) if query_ids is not None else None
    scores = read_pinned(
        lake,
        "silver.single_modal_scores",
        _require_version(versions, "silver.single_modal_scores"),
        columns=[
            "ds",
            "request_id",
            "query_id",
            "item_id",
            "modality",
            "position",
            "score",
            "rank_in_modality",
            "score_percentile_in_modality",
            "model_version",
        ],
        ds_values=ds_values,
        filter_expression=only_queries,
    ).to_pandas()
    if query_splits is not None:
        unique_queries = scores["query_id"].unique()
        keep = {query for query in unique_queries if query_split(query) in set(query_splits)}
        scores = scores[scores["query_id"].isin(keep)]
    if query_ids is not None:
        scores = scores[scores["query_id"].isin(set(query_ids))]
    bad_modality = ~scores["modality"].isin(MODALITY_INDEX)
    if bad_modality.any():
        raise ValueError(
            f"{int(bad_modality.sum())} score rows have an unknown modality, e.g. "
            f"{scores.loc[bad_modality, 'modality'].iloc[0]!r}"
        )

    requests = (
        read_pinned(
            lake,
            "bronze.search_logs",
            _require_version(versions, "bronze.search_logs"),
            columns=["ds", "request_id", "query_text", "user_id"],
            ds_values=ds_values,
            filter_expression=only_queries,
        )
        .to_pandas()
        .drop_duplicates(["ds", "request_id"])
    )
    scores = scores.merge(requests, on=["ds", "request_id"], how="left", validate="many_to_one")
    no_request = scores["query_text"].isna()
    if no_request.any():
        log.warning(
            "%d score rows have no bronze.search_logs request; their query text is empty", int(no_request.sum())
        )
        scores["query_text"] = scores["query_text"].fillna("")

    users: dict[tuple[str, str], NDArray[np.float32]] = {}
    if "bronze.users" in versions:
        users_frame = read_pinned(
            lake,
            "bronze.users",
            versions["bronze.users"],
            columns=["ds", "user_id", "dense_features"],
            ds_values=ds_values,
            filter_expression=isin_filter("user_id", scores["user_id"]) if query_ids is not None else None,
        ).to_pandas()
        users, width = _user_matrix(users_frame, user_dim)
    else:
        width = user_dim or 0
    user_rows = np.zeros((len(scores), width), dtype=np.float32)
    if width and users and len(scores):
        # Row of each impression's user in a [known users + 1] matrix; the last row (zeros) is
        # for users without features.
        keys = list(users)
        matrix = np.vstack([np.stack([users[key] for key in keys]), np.zeros((1, width), np.float32)])
        lookup = pd.Series(np.arange(len(keys)), index=pd.MultiIndex.from_tuples(keys))
        found = lookup.reindex(pd.MultiIndex.from_arrays([scores["ds"], scores["user_id"]])).to_numpy()
        user_rows = matrix[np.where(np.isnan(found), len(keys), found).astype(np.int64)]

    if page_unit == "query":
        scores = scores.assign(page_key=scores["ds"] + "/" + scores["query_id"])
        user_frame = pd.DataFrame(user_rows).assign(
            page_key=scores["page_key"].to_numpy(), request_id=scores["request_id"].to_numpy()
        )
        page_users = user_frame.drop_duplicates(["page_key", "request_id"]).drop(columns="request_id")
        page_users = page_users.groupby("page_key", sort=True).mean()
        items_of_page = (
            scores.groupby(["page_key", "ds", "query_id", "item_id", "modality"], sort=False)
            .agg(score=("score", "mean"), query_text=("query_text", "first"))
            .reset_index()
        )
        # The page's production slot of an item: its most frequent logged position (ties: the
        # smaller), so the few randomised exploration requests do not move it.
        slots = (
            scores.groupby(["page_key", "item_id", "position"], sort=False)
            .size()
            .rename("shown")
            .reset_index()
            .sort_values(["page_key", "item_id", "shown", "position"], ascending=[True, True, False, True])
            .drop_duplicates(["page_key", "item_id"])[["page_key", "item_id", "position"]]
        )
        items_of_page = items_of_page.merge(slots, on=["page_key", "item_id"], how="left", validate="one_to_one")
        items_of_page = rank_within_page_modality(items_of_page, "page_key")
        items_of_page["request_id"] = ""
        items_of_page = items_of_page.sort_values(["page_key", "position", "item_id"], kind="stable")
        page_user_matrix = page_users.reindex(items_of_page["page_key"].unique()).to_numpy(dtype=np.float32)
    elif page_unit == "request":
        items_of_page = scores.assign(page_key=scores["ds"] + "/" + scores["request_id"])
        items_of_page = items_of_page.assign(_user_row=np.arange(len(items_of_page)))
        items_of_page = items_of_page.sort_values(["page_key", "position", "item_id"], kind="stable")
        first_rows = items_of_page.drop_duplicates("page_key")["_user_row"].to_numpy()
        page_user_matrix = user_rows[first_rows] if len(first_rows) else np.zeros((0, width), np.float32)
    else:
        raise ValueError(f"page_unit must be 'query' or 'request', got {page_unit!r}")
    items_of_page = items_of_page.reset_index(drop=True)

    page_keys, page_codes = np.unique(items_of_page["page_key"].to_numpy(), return_inverse=True)
    # np.unique sorts keys, and rows are sorted by page_key: codes are non-decreasing.
    offsets = np.concatenate([[0], np.cumsum(np.bincount(page_codes, minlength=len(page_keys)))]).astype(np.int64)
    first_of_page = offsets[:-1]

    catalogue = (
        read_pinned(
            lake,
            "bronze.items",
            _require_version(versions, "bronze.items"),
            columns=[
                "ds",
                "item_id",
                "title",
                "body",
                "visual_embedding",
                "impression_count",
                "click_count",
                "like_count",
                "share_count",
            ],
            ds_values=ds_values,
            filter_expression=isin_filter("item_id", items_of_page["item_id"]) if query_ids is not None else None,
        )
        .to_pandas()
        .drop_duplicates(["ds", "item_id"])
    )
    joined = items_of_page.merge(catalogue, on=["ds", "item_id"], how="left", validate="many_to_one", indicator=True)
    missing_items = joined["_merge"] != "both"
    if missing_items.any():
        # No silent fallback: an impression without its catalogue row is an upstream bug.
        example = joined.loc[missing_items, ["ds", "item_id"]].iloc[0].to_dict()
        raise ValueError(f"{int(missing_items.sum())} candidates have no bronze.items row, e.g. {example}")

    modality_ids = joined["modality"].map(MODALITY_INDEX).to_numpy(dtype=np.int64)
    score_values = joined["score"].to_numpy(dtype=np.float64)
    zscore, _ = _within_page_modality_stats(page_codes, modality_ids, score_values)
    ranks = joined["rank_in_modality"].to_numpy(dtype=np.int32)

    embeddings = joined["visual_embedding"].tolist()
    width_seen = next((len(e) for e in embeddings if e is not None), 0)
    visual_width = width_seen if visual_dim is None else visual_dim
    visual = np.zeros((len(joined), visual_width), dtype=np.float32)
    has_visual = np.zeros(len(joined), dtype=np.float32)
    for row, embedding in enumerate(embeddings):
        if embedding is not None and visual_width:
            values = np.nan_to_num(np.asarray(embedding, dtype=np.float32))
            visual[row, : min(visual_width, len(values))] = values[:visual_width]
            has_visual[row] = 1.0

    text_width = TEXT_EMBEDDING_DIM if with_text else 0
    page_query_texts = joined["query_text"].to_numpy()[first_of_page] if len(joined) else np.array([])
    if with_text and len(joined):
        encode_function = encode or text_encoder(encoder_name)
        item_text_values = item_texts(joined)
        all_texts = [str(text) for text in page_query_texts] + item_text_values
        embedded = encode_texts_cached(all_texts, encode=encode_function, cache=embedding_cache)
        text_width = embedded.shape[1]
        query_embedding = embedded[: len(page_query_texts)]
        text_embedding = embedded[len(page_query_texts) :]
        cosine = np.einsum("nd,nd->n", text_embedding, query_embedding[page_codes])
    else:
        query_embedding = np.zeros((len(page_keys), text_width), dtype=np.float32)
        text_embedding = np.zeros((len(joined), text_width), dtype=np.float32)
        cosine = np.zeros(len(joined), dtype=np.float64)

    numeric = (
        np.column_stack(
            [
                score_values,
                joined["score_percentile_in_modality"].to_numpy(dtype=np.float64),
                zscore,
                1.0 / np.maximum(ranks, 1),
                cosine,
                has_visual,
                engagement_features(joined),
            ]
        ).astype(np.float32)
        if len(joined)
        else np.zeros((0, len(NUMERIC_FEATURE_NAMES)), np.float32)
    )

    page_ds = joined["ds"].to_numpy(dtype=object)[first_of_page]
    page_query = joined["query_id"].to_numpy(dtype=object)[first_of_page]
    page_request = joined["request_id"].to_numpy(dtype=object)[first_of_page]
    page_ids = np.array(
        [
            f"{ds}/{query}" if page_unit == "query" else f"{ds}/{request}"
            for ds, query, request in zip(page_ds, page_query, page_request, strict=True)
        ],
        dtype=object,
    )
    pinned = {
        table: int(versions[table])
        for table in ("silver.single_modal_scores", "bronze.search_logs", "bronze.items", "bronze.users")
        if table in versions
    }
    return PageStore(
        page_id=page_ids,
        page_ds=page_ds,
        query_id=page_query,
        request_id=page_request,
        offsets=offsets,
        item_id=joined["item_id"].to_numpy(dtype=object),
        modality_id=modality_ids,
        position=joined["position"].fillna(0).to_numpy(dtype=np.int32),
        numeric=numeric,
        single_modal_score=score_values.astype(np.float32),
        rank_in_modality=ranks,
        text_embedding=np.ascontiguousarray(text_embedding, dtype=np.float32),
        visual_embedding=visual,
        query_embedding=np.ascontiguousarray(query_embedding, dtype=np.float32),
        user_features=np.asarray(page_user_matrix, dtype=np.float32).reshape(len(page_keys), width),
        labels=np.full(len(joined), np.nan, dtype=np.float32),
        input_versions=pinned,
        score_model_versions=tuple(sorted(str(version) for version in scores["model_version"].dropna().unique())),
        encoder_name=encoder_name if with_text else "none",
    )


# --------------------------------------------------------------------------------- the labels


def read_page_labels(
    lake: Lakehouse, version: int, *, ds_values: Sequence[str], annotators: Sequence[str] | None = None
) -> pd.DataFrame:
    """`silver.page_labels` at `version` (only `annotators` when given), one row per
    (ds, query_id, item_id, page_id): the mean grade over annotators (`grade`) and their count
    (`annotators`)."""
    only = pc.field("annotator").isin(list(annotators)) if annotators is not None else None
    labels = read_pinned(
        lake,
        "silver.page_labels",
        version,
        columns=["ds", "page_id", "query_id", "item_id", "annotator", "grade"],
        ds_values=ds_values,
        filter_expression=only,
    ).to_pandas()
    return (
        labels.groupby(["ds", "query_id", "item_id", "page_id"], sort=True)
        .agg(grade=("grade", "mean"), annotators=("annotator", "nunique"))
        .reset_index()
    )


def read_truth_grades(lake: Lakehouse, *, ds_values: Sequence[str], version: int | None = None) -> pd.DataFrame:
    """`truth.relevance` (ds, query_id, item_id, grade): for oracle evaluation only, never training."""
    table_version = lake.version("truth.relevance") if version is None else version
    return read_pinned(
        lake, "truth.relevance", table_version, columns=["ds", "query_id", "item_id", "grade"], ds_values=ds_values
    ).to_pandas()


def describe_versions(versions: Mapping[str, int]) -> str:
    """Versions as sorted JSON (for the registry and logs)."""
    return json.dumps({table: int(version) for table, version in sorted(versions.items())}, sort_keys=True)


# ------------------------------------------------------------------------- iso-label anchors


def read_iso_label_anchors(lake: Lakehouse, version: int, *, ds_values: Sequence[str]) -> pd.DataFrame:
    """`silver.iso_label_anchors` at `version`: (ds, query_id, grade_boundary, modality, side,
    item_id), rows without an item (a boundary at the end of a list) left out."""
    anchors = read_pinned(
        lake,
        "silver.iso_label_anchors",
        version,
        columns=["ds", "query_id", "grade_boundary", "modality", "side", "item_id"],
        ds_values=ds_values,
    ).to_pandas()
    return anchors[anchors["item_id"].notna()].reset_index(drop=True)

"""Text embeddings of the reranker's inputs, encoded at most once per text ever.

The encoder is looked up by name (a run records the name it was trained with, and scoring looks
the same encoder up by it); embeddings are cached per encoder under the artifacts location, as a
Parquet table keyed by the text's hash (`<artifacts>/text_embeddings/<encoder>/part-*.parquet`,
columns `text_key`, `embedding`): a run appends one part file with the texts it encoded, so the
cache grows by appends instead of being rewritten, on local disk or an object store alike.
"""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from smar.single_modal.rankers.encoder import TEXT_EMBEDDING_DIM, EncodedTexts
from smar.storage import files
from smar.storage.uris import join, normalize_location

log = logging.getLogger(__name__)

TextEncodeFunction = Callable[[Sequence[object]], EncodedTexts]
DEFAULT_ENCODER_NAME = "all-MiniLM-L6-v2"


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _read_cache(cache: str, wanted: set[str]) -> dict[str, NDArray[np.float32]]:
    """The cached embeddings of the `wanted` keys (parts read in name order; a key two runs
    appended at once is the same embedding, the first is kept)."""
    cached: dict[str, NDArray[np.float32]] = {}
    for entry in files.list_files(cache, recursive=False):
        if not entry.uri.endswith(".parquet"):
            continue
        part = pq.read_table(io.BytesIO(files.read_bytes(entry.uri)))
        keys = part.column("text_key").to_pylist()
        embeddings = part.column("embedding").to_pylist()
        for key, embedding in zip(keys, embeddings, strict=True):
            if key in wanted and key not in cached:
                cached[key] = np.asarray(embedding, dtype=np.float32)
    return cached


def _append_to_cache(cache: str, new: dict[str, NDArray[np.float32]]) -> None:
    part = pa.table(
        {
            "text_key": pa.array(list(new), pa.string()),
            "embedding": pa.array([row.tolist() for row in new.values()], pa.list_(pa.float32())),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(part, buffer)
    files.write_bytes(join(cache, f"part-{uuid.uuid4().hex}.parquet"), buffer.getvalue())


def encode_texts_cached(
    texts: Sequence[str],
    *,
    encode: TextEncodeFunction,
    cache: str | Path | None,
) -> NDArray[np.float32]:
    """Embeddings [len(texts), D] with every distinct text encoded at most once, ever: texts
    already in the `cache` table (a location, keyed by sha256 of the text) are read back, the
    others are encoded in one call to `encode` and appended as one new part file."""
    keys = [_text_key(text) for text in texts]
    location = None if cache is None else normalize_location(cache, what="text embedding cache")
    cached = {} if location is None else _read_cache(location, set(keys))
    missing_texts: dict[str, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if key not in cached:
            missing_texts.setdefault(key, text)
    if missing_texts:
        encoded = encode(list(missing_texts.values()))
        new_rows = encoded.embeddings[encoded.index]
        new = {key: np.asarray(row, dtype=np.float32) for key, row in zip(missing_texts, new_rows, strict=True)}
        cached.update(new)
        if location is not None:
            _append_to_cache(location, new)
        log.info("encoded %d new texts (%d from cache)", len(missing_texts), len(set(keys)) - len(missing_texts))
    if not keys:
        return np.zeros((0, TEXT_EMBEDDING_DIM), dtype=np.float32)
    return np.stack([cached[key] for key in keys]).astype(np.float32)


def default_text_encoder() -> TextEncodeFunction:
    """MiniLM through `smar.single_modal.rankers.encoder.encode_unique` (imported lazily: it loads torch)."""
    from smar.single_modal.rankers.encoder import encode_unique

    return lambda texts: encode_unique(texts)


_TEXT_ENCODERS: dict[str, Callable[[], TextEncodeFunction]] = {DEFAULT_ENCODER_NAME: default_text_encoder}


def register_text_encoder(name: str, factory: Callable[[], TextEncodeFunction]) -> None:
    """Make encoder `name` available to `text_encoder` (a run records the name it was trained
    with, and scoring looks the same encoder up by that name)."""
    _TEXT_ENCODERS[name] = factory


def text_encoder(name: str = DEFAULT_ENCODER_NAME) -> TextEncodeFunction:
    """The encode function registered as `name` (KeyError naming the known ones)."""
    try:
        return _TEXT_ENCODERS[name]()
    except KeyError:
        raise KeyError(f"unknown text encoder {name!r}; registered: {sorted(_TEXT_ENCODERS)}") from None


def embedding_cache_location(artifacts: str, encoder_name: str = DEFAULT_ENCODER_NAME) -> str:
    """Where embeddings of encoder `encoder_name` are cached: <artifacts>/text_embeddings/<name>/."""
    safe = "".join(char if char.isalnum() or char in "-_." else "_" for char in encoder_name)
    return join(artifacts, "text_embeddings", safe)

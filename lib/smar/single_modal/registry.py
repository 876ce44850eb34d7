"""Where the single-modal rankers live and which version scoring uses.

`<artifacts>/single_modal/<model_version>/<modality>/` holds one artifact per modality
(`smar.single_modal.rankers.artifacts`); `<artifacts>/single_modal/CURRENT` names the version
`score` uses by default. Training writes the pointer last, so a half-trained version is never
picked up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smar.errors import MissingInput
from smar.lake import Lakehouse
from smar.vocabulary import content_id

CURRENT_POINTER = "CURRENT"
MODEL_VERSION_PREFIX = "sm"


def single_modal_dir(lake: Lakehouse) -> Path:
    """The folder holding every single-modal model version."""
    return lake.settings.artifacts.resolve() / "single_modal"


def model_version_of(definition: dict[str, Any]) -> str:
    """`sm-<12 hex>`, named by what defines the training run (days, input versions, seed, ...)."""
    return content_id(MODEL_VERSION_PREFIX, definition)


def current_model_version(lake: Lakehouse) -> str:
    """The model version `score` uses by default (written last by training)."""
    pointer = single_modal_dir(lake) / CURRENT_POINTER
    if not pointer.is_file():
        raise MissingInput(
            f"no single-modal rankers registered: {pointer} is missing; run `smar train-single-modal` first"
        )
    return pointer.read_text().strip()


def publish_current(lake: Lakehouse, model_version: str) -> None:
    """Point `CURRENT` at `model_version`: the last step of training."""
    (single_modal_dir(lake) / CURRENT_POINTER).write_text(model_version + "\n")

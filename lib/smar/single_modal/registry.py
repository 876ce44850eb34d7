"""Where the single-modal rankers live and which version scoring uses.

`<artifacts>/single_modal/<model_version>/<modality>/` holds one artifact per modality
(`smar.single_modal.rankers.artifacts`); `<artifacts>/single_modal/CURRENT` names the version
`score` uses by default. Training writes the pointer last, so a half-trained version is never
picked up.
"""

from __future__ import annotations

from typing import Any

from smar.errors import MissingInput
from smar.lake import Lakehouse
from smar.storage import files
from smar.storage.uris import display, join
from smar.vocabulary import content_id

CURRENT_POINTER = "CURRENT"
MODEL_VERSION_PREFIX = "sm"


def single_modal_dir(lake: Lakehouse) -> str:
    """The folder (a URI) holding every single-modal model version."""
    return join(lake.settings.artifacts, "single_modal")


def model_version_dir(lake: Lakehouse, model_version: str) -> str:
    """The folder (a URI) of one model version: one artifact per modality below it."""
    return join(single_modal_dir(lake), model_version)


def model_version_of(definition: dict[str, Any]) -> str:
    """`sm-<12 hex>`, named by what defines the training run (days, input versions, seed, ...)."""
    return content_id(MODEL_VERSION_PREFIX, definition)


def current_model_version(lake: Lakehouse) -> str:
    """The model version `score` uses by default (written last by training)."""
    pointer = join(single_modal_dir(lake), CURRENT_POINTER)
    if not files.is_file(pointer):
        raise MissingInput(
            f"no single-modal rankers registered: {display(pointer)} is missing; run `smar train-single-modal` first"
        )
    return files.read_text(pointer).strip()


def publish_current(lake: Lakehouse, model_version: str) -> None:
    """Point `CURRENT` at `model_version`: the last step of training."""
    files.write_text(join(single_modal_dir(lake), CURRENT_POINTER), model_version + "\n")

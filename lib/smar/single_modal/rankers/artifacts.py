"""One ranker artifact = one directory: `state_dict.pt`, `config.json`, `metadata.json`.

`load_ranker` refuses anything missing, unreadable or for another modality with a
`RankerArtifactError` that names the path and the modality. `load_ranker_cached` keeps one
loaded model per (path, modality, device, file mtimes) per worker process, so a pandas UDF loads
each model once, not once per Arrow batch, and picks up a rewritten artifact.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from smar.errors import ArtifactError
from smar.single_modal.rankers.device import select_device
from smar.single_modal.rankers.models import RankerConfig, SingleModalRanker, build_ranker

STATE_DICT_FILE = "state_dict.pt"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
ARTIFACT_FILES: tuple[str, ...] = (STATE_DICT_FILE, CONFIG_FILE, METADATA_FILE)


class RankerArtifactError(ArtifactError):
    """A ranker artifact directory is missing, incomplete, corrupt or for another modality."""

    def __init__(self, path: Path | str, modality: str, reason: str) -> None:
        self.path = Path(path)
        self.modality = modality
        self.reason = reason
        super().__init__(f"ranker artifact for modality {modality!r} at {self.path}: {reason}")


@dataclass(frozen=True)
class RankerMetadata:
    """What a ranker was trained on and how well it did; stored as `metadata.json`."""

    model_version: str
    modality: str
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    training_table_versions: dict[str, int] = field(default_factory=dict)  # table -> Delta version
    validation_metrics: dict[str, Any] = field(default_factory=dict)
    query_split: dict[str, Any] = field(default_factory=dict)  # how train/validation queries split

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class LoadedRanker:
    """A ranker read back from disk: model in eval mode on its device, config and metadata."""

    model: SingleModalRanker
    config: RankerConfig
    metadata: RankerMetadata
    path: Path


def save_ranker(model: SingleModalRanker, path: Path | str, *, metadata: RankerMetadata) -> Path:
    """Write the artifact directory `path` (created if needed) and return it. Each file is written
    to a temporary name then renamed, so a reader never sees a half-written file."""
    directory = Path(path)
    config = model.config
    if metadata.modality != config.modality:
        raise ValueError(f"metadata is for modality {metadata.modality!r}, model for {config.modality!r}")
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    _atomic_write(directory / STATE_DICT_FILE, lambda handle: torch.save(state, handle))
    _atomic_write(directory / CONFIG_FILE, lambda handle: handle.write(config.to_json().encode()))
    metadata_json = json.dumps(metadata.to_dict(), indent=2, sort_keys=True)
    _atomic_write(directory / METADATA_FILE, lambda handle: handle.write(metadata_json.encode()))
    return directory


def _atomic_write(target: Path, write: Any) -> None:
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with temporary.open("wb") as handle:
        write(handle)
    os.replace(temporary, target)


def _read_json(directory: Path, name: str, modality: str) -> dict[str, Any]:
    try:
        values = json.loads((directory / name).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RankerArtifactError(directory, modality, f"cannot read {name}: {error}") from error
    if not isinstance(values, dict):
        raise RankerArtifactError(directory, modality, f"{name} must hold a JSON object")
    return values


def load_ranker(path: Path | str, modality: str, *, device: str | torch.device = "cpu") -> LoadedRanker:
    """Read the artifact at `path` for `modality` onto `device` ("auto": `select_device`).
    Raises `RankerArtifactError` naming path and modality when a file is missing or corrupt,
    or when the artifact belongs to another modality."""
    directory = Path(path)
    if not directory.is_dir():
        raise RankerArtifactError(directory, modality, "directory does not exist")
    missing = [name for name in ARTIFACT_FILES if not (directory / name).is_file()]
    if missing:
        raise RankerArtifactError(directory, modality, f"missing files {missing}")

    config_values = _read_json(directory, CONFIG_FILE, modality)
    try:
        config = RankerConfig.from_dict(config_values)
    except (TypeError, ValueError) as error:
        raise RankerArtifactError(directory, modality, f"invalid {CONFIG_FILE}: {error}") from error
    metadata_values = _read_json(directory, METADATA_FILE, modality)
    try:
        metadata = RankerMetadata(**metadata_values)
    except TypeError as error:
        raise RankerArtifactError(directory, modality, f"invalid {METADATA_FILE}: {error}") from error
    for name, found in ((CONFIG_FILE, config.modality), (METADATA_FILE, metadata.modality)):
        if found != modality:
            raise RankerArtifactError(directory, modality, f"{name} says modality {found!r}, expected {modality!r}")

    try:
        # weights_only: a state_dict needs no pickled code, and refusing code is safer.
        state = torch.load(directory / STATE_DICT_FILE, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise RankerArtifactError(
            directory, modality, f"cannot read {STATE_DICT_FILE}: {type(error).__name__}: {error}"
        ) from error
    model = build_ranker(modality, config)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise RankerArtifactError(
            directory, modality, f"{STATE_DICT_FILE} does not fit {CONFIG_FILE}: {error}"
        ) from error
    resolved = select_device(device)
    return LoadedRanker(model.to(resolved).eval(), config, metadata, directory)


_cache: dict[tuple[str, str, str, tuple[int, ...]], LoadedRanker] = {}
_cache_lock = threading.Lock()
_artifact_load_count = 0


def load_ranker_cached(path: Path | str, modality: str, *, device: str | torch.device = "cpu") -> LoadedRanker:
    """`load_ranker`, once per process for each (path, modality, device, files' mtimes): a
    rewritten artifact changes an mtime and is loaded afresh."""
    global _artifact_load_count
    directory = Path(path).resolve()
    resolved = str(select_device(device))
    try:
        mtimes = tuple((directory / name).stat().st_mtime_ns for name in ARTIFACT_FILES)
    except OSError:
        return load_ranker(directory, modality, device=resolved)  # raises the precise error
    key = (str(directory), modality, resolved, mtimes)
    with _cache_lock:
        loaded = _cache.get(key)
        if loaded is None:
            loaded = load_ranker(directory, modality, device=resolved)
            # Keep only the newest version of each (path, modality, device).
            for stale in [k for k in _cache if k[:3] == key[:3]]:
                del _cache[stale]
            _cache[key] = loaded
            _artifact_load_count += 1
    return loaded


def artifact_load_count() -> int:
    """How many artifacts `load_ranker_cached` has read from disk in this process."""
    return _artifact_load_count


def clear_ranker_cache() -> None:
    """Forget every cached ranker (tests; freeing memory in a long-lived worker)."""
    with _cache_lock:
        _cache.clear()

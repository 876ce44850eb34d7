"""One ranker artifact = one folder: `state_dict.pt`, `config.json`, `metadata.json`.

The folder is a location (a local path or a URI: `s3://bucket/artifacts/...`), read and written
through the filesystem layer (`smar.storage.files`). `load_ranker` refuses anything missing,
unreadable or for another modality with a `RankerArtifactError` that names the location and the
modality.

Scoring ships the three files' bytes to the executors inside the UDF (`read_ranker_files`,
about 1.2 MB for the four rankers), so no executor needs the driver's disk or the artifact store.
`load_ranker_cached` keeps one loaded model per worker process for each (bytes digest, modality,
device), or for each (location, modality, device, files' mtimes) when given a location, so a
pandas UDF builds each model once, not once per Arrow batch, and picks up a rewritten artifact.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from smar.errors import ArtifactError
from smar.single_modal.rankers.device import select_device
from smar.single_modal.rankers.models import RankerConfig, SingleModalRanker, build_ranker
from smar.storage import files
from smar.storage.uris import display, join, normalize_location

STATE_DICT_FILE = "state_dict.pt"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
ARTIFACT_FILES: tuple[str, ...] = (STATE_DICT_FILE, CONFIG_FILE, METADATA_FILE)


class RankerArtifactError(ArtifactError):
    """A ranker artifact directory is missing, incomplete, corrupt or for another modality."""

    def __init__(self, path: Path | str, modality: str, reason: str) -> None:
        self.path = display(path) if isinstance(path, str) and "://" in path else str(path)
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
    path: str  # where it was read from, as people read it


#: One artifact's files, by name: what the scoring UDF carries to the executors.
RankerFiles = Mapping[str, bytes]


def save_ranker(model: SingleModalRanker, path: Path | str, *, metadata: RankerMetadata) -> str:
    """Write the artifact folder at location `path` and return its URI. Each file is published
    whole (`files.write_bytes`), so a reader never sees a half-written file."""
    directory = normalize_location(path, what="ranker artifact")
    config = model.config
    if metadata.modality != config.modality:
        raise ValueError(f"metadata is for modality {metadata.modality!r}, model for {config.modality!r}")
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    files.write_bytes(join(directory, STATE_DICT_FILE), buffer.getvalue())
    files.write_bytes(join(directory, CONFIG_FILE), config.to_json().encode())
    metadata_json = json.dumps(metadata.to_dict(), indent=2, sort_keys=True)
    files.write_bytes(join(directory, METADATA_FILE), metadata_json.encode())
    return directory


def read_ranker_files(path: Path | str, modality: str) -> dict[str, bytes]:
    """The artifact's three files at location `path` (`RankerArtifactError` when one is missing)."""
    directory = normalize_location(path, what="ranker artifact")
    shown = display(directory)
    if not files.is_dir(directory):
        raise RankerArtifactError(shown, modality, "directory does not exist")
    missing = [name for name in ARTIFACT_FILES if not files.is_file(join(directory, name))]
    if missing:
        raise RankerArtifactError(shown, modality, f"missing files {missing}")
    try:
        return {name: files.read_bytes(join(directory, name)) for name in ARTIFACT_FILES}
    except OSError as error:
        raise RankerArtifactError(shown, modality, f"cannot read the artifact: {error}") from error


def _read_json(content: bytes, where: str, name: str, modality: str) -> dict[str, Any]:
    try:
        values = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RankerArtifactError(where, modality, f"cannot read {name}: {error}") from error
    if not isinstance(values, dict):
        raise RankerArtifactError(where, modality, f"{name} must hold a JSON object")
    return values


def load_ranker(path: Path | str, modality: str, *, device: str | torch.device = "cpu") -> LoadedRanker:
    """Read the artifact at location `path` for `modality` onto `device` ("auto":
    `select_device`). Raises `RankerArtifactError` naming the location and modality when a file
    is missing or corrupt, or when the artifact belongs to another modality."""
    directory = normalize_location(path, what="ranker artifact")
    return ranker_from_files(read_ranker_files(directory, modality), modality, device=device, where=display(directory))


def ranker_from_files(
    artifact: RankerFiles, modality: str, *, device: str | torch.device = "cpu", where: str = "<bytes>"
) -> LoadedRanker:
    """The ranker built from its files' bytes (`read_ranker_files`), refused like `load_ranker`."""
    directory = where
    missing = [name for name in ARTIFACT_FILES if name not in artifact]
    if missing:
        raise RankerArtifactError(directory, modality, f"missing files {missing}")
    config_values = _read_json(artifact[CONFIG_FILE], directory, CONFIG_FILE, modality)
    try:
        config = RankerConfig.from_dict(config_values)
    except (TypeError, ValueError) as error:
        raise RankerArtifactError(directory, modality, f"invalid {CONFIG_FILE}: {error}") from error
    metadata_values = _read_json(artifact[METADATA_FILE], directory, METADATA_FILE, modality)
    try:
        metadata = RankerMetadata(**metadata_values)
    except TypeError as error:
        raise RankerArtifactError(directory, modality, f"invalid {METADATA_FILE}: {error}") from error
    for name, found in ((CONFIG_FILE, config.modality), (METADATA_FILE, metadata.modality)):
        if found != modality:
            raise RankerArtifactError(directory, modality, f"{name} says modality {found!r}, expected {modality!r}")

    try:
        # weights_only: a state_dict needs no pickled code, and refusing code is safer.
        state = torch.load(io.BytesIO(artifact[STATE_DICT_FILE]), map_location="cpu", weights_only=True)
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


_cache: dict[tuple[str, str, str, tuple[float, ...]], LoadedRanker] = {}
_cache_lock = threading.Lock()
_artifact_load_count = 0


def files_digest(artifact: RankerFiles) -> str:
    """sha256 of an artifact's files: the cache key of a ranker shipped as bytes."""
    digest = hashlib.sha256()
    for name in ARTIFACT_FILES:
        digest.update(name.encode())
        digest.update(artifact.get(name, b""))
    return digest.hexdigest()


def load_ranker_cached(
    source: Path | str | RankerFiles, modality: str, *, device: str | torch.device = "cpu", digest: str | None = None
) -> LoadedRanker:
    """`load_ranker` (or `ranker_from_files` for bytes), once per process for each (location,
    modality, device, files' mtimes) or (bytes digest, modality, device): a rewritten artifact
    changes an mtime or a digest and is loaded afresh."""
    global _artifact_load_count
    resolved = str(select_device(device))
    if isinstance(source, Mapping):
        artifact = source
        key: tuple[str, str, str, tuple[float, ...]] = (digest or files_digest(artifact), modality, resolved, ())

        def load() -> LoadedRanker:
            return ranker_from_files(artifact, modality, device=resolved)

    else:
        directory = normalize_location(source, what="ranker artifact")
        entries = {entry.uri: entry.mtime for entry in files.list_files(directory, recursive=False)}
        mtimes = tuple(entries.get(join(directory, name)) for name in ARTIFACT_FILES)
        if any(mtime is None for mtime in mtimes):
            return load_ranker(directory, modality, device=resolved)  # raises the precise error
        key = (directory, modality, resolved, tuple(float(mtime or 0.0) for mtime in mtimes))

        def load() -> LoadedRanker:
            return load_ranker(directory, modality, device=resolved)

    with _cache_lock:
        loaded = _cache.get(key)
        if loaded is None:
            loaded = load()
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

"""The one filesystem layer for everything that is not a Delta table, on `pyarrow.fs`.

Artifacts, the `CURRENT` pointer, reports, annotation exports, label files, Great Expectations
results and landing folders are read and written through these functions, whatever the
location's scheme (`smar.storage.uris`). Local URIs use pyarrow's LocalFileSystem, `s3://` and
`s3a://` its S3FileSystem with the options of `smar.storage.settings` (the standard AWS_*
variables), `gs://` its GcsFileSystem and `abfs(s)://` its AzureFileSystem.

Why pyarrow.fs and not fsspec: pyarrow is already a dependency of every engine here, and fsspec's
`s3fs` cannot be installed next to the project's `python-dateutil==4` (aiobotocore pins `<3`).
Where an fsspec API is needed (Airflow's ObjectStoragePath), `fsspec_filesystem` wraps pyarrow.

Writes publish whole files: a local write goes to a temporary sibling, then `os.replace`; an
object store shows an object only once its upload completes. Folders are prefixes on an object
store: `is_dir` is true when some object lies below.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from smar.storage.settings import StorageSettings, storage_settings_from_env
from smar.storage.uris import is_local, join, local_path, normalize_location, relative_to, scheme_of


@dataclass(frozen=True)
class FileEntry:
    """One file found by `list_files`."""

    uri: str
    size: int
    mtime: float | None  # seconds since the epoch; None where the store does not say


def _settings_key() -> StorageSettings:
    return storage_settings_from_env()


@lru_cache(maxsize=8)
def _remote_filesystem(scheme: str, account: str, settings: StorageSettings) -> pafs.FileSystem:
    if scheme in ("s3", "s3a"):
        return pafs.S3FileSystem(**cast(dict[str, Any], settings.pyarrow_s3_options()))
    if scheme == "gs":
        return pafs.GcsFileSystem()
    if scheme in ("abfs", "abfss"):
        az = settings.azure
        name = az.account_name or account.split(".", 1)[0]
        options = {
            key: value
            for key, value in {
                "account_key": az.account_key,
                "sas_token": az.sas_token,
                "client_id": az.client_id,
                "client_secret": az.client_secret,
                "tenant_id": az.tenant_id,
            }.items()
            if value
        }
        return pafs.AzureFileSystem(name, **options)
    raise ValueError(f"no filesystem for scheme {scheme!r}")


_LOCAL = pafs.LocalFileSystem()


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of `uri` and the path inside it (`bucket/key` on object stores)."""
    scheme = scheme_of(uri)
    if scheme == "file":
        return _LOCAL, str(local_path(uri))
    parts = urlsplit(uri)
    if scheme in ("abfs", "abfss"):
        container, _, account = parts.netloc.partition("@")
        return _remote_filesystem(scheme, account, _settings_key()), container + parts.path
    return _remote_filesystem(scheme, "", _settings_key()), parts.netloc + parts.path


def table_filesystem(uri: str) -> pafs.FileSystem:
    """A native pyarrow filesystem rooted at the Delta table `uri`, for delta-rs's pyarrow readers
    (`to_pyarrow_dataset`, `to_pyarrow_table`, `to_pandas`: `filesystem=`).

    Without it delta-rs reads through its own Python filesystem handler, called from pyarrow's I/O
    threads, and deltalake 1.6.6 with pyarrow 26 then aborts most bare scripts at interpreter exit
    ("terminate called without an active exception", as in delta-io/delta-rs#2184), local tables
    included. Measured here: 13 of 15 scripts reading a local table aborted, 11 of 30 on S3; with
    this filesystem 0 of 15 and 0 of 20."""
    filesystem, path = resolve(uri)
    return pafs.SubTreeFileSystem(path, filesystem)


def _info(uri: str) -> pafs.FileInfo:
    filesystem, path = resolve(uri)
    info: pafs.FileInfo = filesystem.get_file_info(path)
    return info


def exists(uri: str) -> bool:
    """A file or a (non-empty, on object stores) folder at `uri`."""
    return bool(_info(uri).type != pafs.FileType.NotFound)


def is_file(uri: str) -> bool:
    return bool(_info(uri).type == pafs.FileType.File)


def is_dir(uri: str) -> bool:
    return bool(_info(uri).type == pafs.FileType.Directory)


def file_size(uri: str) -> int:
    """Size in bytes of the file at `uri` (0 when the store does not say)."""
    return int(_info(uri).size or 0)


def read_bytes(uri: str) -> bytes:
    """The file's bytes (`FileNotFoundError` naming the URI when there is none)."""
    filesystem, path = resolve(uri)
    try:
        with filesystem.open_input_stream(path) as source:
            data: bytes = source.read()
            return data
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{uri}: no such file") from error
    except OSError as error:
        if _info(uri).type != pafs.FileType.File:
            raise FileNotFoundError(f"{uri}: no such file") from error
        raise


def read_text(uri: str, encoding: str = "utf-8") -> str:
    return read_bytes(uri).decode(encoding)


@contextlib.contextmanager
def _local_output(uri: str) -> Iterator[BinaryIO]:
    """A temporary sibling of the local file `uri`, moved over it by `os.replace` when the block
    ends without an error (a reader sees the old file or the new one), removed otherwise."""
    target = local_path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with temporary.open("wb") as sink:
            yield cast(BinaryIO, sink)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_bytes(uri: str, data: bytes) -> str:
    """Publish `data` at `uri` whole (a reader sees the old file or the new one); returns `uri`."""
    if is_local(uri):
        with _local_output(uri) as sink:
            sink.write(data)
        return uri
    filesystem, path = resolve(uri)
    with filesystem.open_output_stream(path) as sink:
        sink.write(data)
    return uri


def write_text(uri: str, text: str, encoding: str = "utf-8") -> str:
    return write_bytes(uri, text.encode(encoding))


#: Bytes an `open_output` to an object store keeps in memory before it spills to a local temporary file.
SPOOL_BYTES = 32 << 20


@contextlib.contextmanager
def open_output(uri: str) -> Iterator[BinaryIO]:
    """A writable binary stream for a file too large to build in memory, published at `uri`
    whole when the block ends without an error; after an error nothing is published.

    Local: a temporary sibling, then `os.replace`. Object store: the bytes are spooled (memory up
    to `SPOOL_BYTES`, then a local temporary file) and uploaded at the end, because an upload
    stream, once opened, completes its object on close even after an error."""
    if is_local(uri):
        with _local_output(uri) as sink:
            yield sink
        return
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        yield cast(BinaryIO, spool)
        spool.seek(0)
        filesystem, path = resolve(uri)
        with filesystem.open_output_stream(path) as upload:
            shutil.copyfileobj(spool, upload, length=1 << 20)


@contextlib.contextmanager
def open_text_output(uri: str, encoding: str = "utf-8") -> Iterator[TextIO]:
    """`open_output` as text (no newline translation)."""
    with open_output(uri) as sink:
        text = io.TextIOWrapper(sink, encoding=encoding, newline="")
        yield text
        text.flush()
        text.detach()  # the binary stream is open_output's to close and publish


@contextlib.contextmanager
def open_input(uri: str) -> Iterator[BinaryIO]:
    """A readable binary stream of the file (for large files read in pieces)."""
    filesystem, path = resolve(uri)
    with filesystem.open_input_file(path) as source:
        yield cast(BinaryIO, source)


def list_files(uri: str, *, recursive: bool = True) -> list[FileEntry]:
    """Every file below `uri` (none when it does not exist), sorted by URI."""
    filesystem, path = resolve(uri)
    selector = pafs.FileSelector(path, recursive=recursive, allow_not_found=True)
    entries = []
    base = path.rstrip("/")
    for info in filesystem.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        below = info.path[len(base) :].lstrip("/") if info.path.startswith(base) else info.path
        mtime = info.mtime.timestamp() if info.mtime is not None else None
        entries.append(FileEntry(join(uri, below), int(info.size or 0), mtime))
    return sorted(entries, key=lambda entry: entry.uri)


def list_dirs(uri: str) -> list[str]:
    """The folders directly below `uri` (prefixes on an object store), sorted."""
    filesystem, path = resolve(uri)
    selector = pafs.FileSelector(path, recursive=False, allow_not_found=True)
    names = sorted(
        info.base_name for info in filesystem.get_file_info(selector) if info.type == pafs.FileType.Directory
    )
    return [join(uri, name) for name in names]


def remove_tree(uri: str) -> None:
    """Remove the folder (or prefix) `uri` and everything below it; nothing when absent."""
    filesystem, path = resolve(uri)
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        filesystem.delete_dir(path)
    elif info.type == pafs.FileType.File:
        filesystem.delete_file(path)


def remove_empty_parents(uri: str, root: str) -> None:
    """Remove the now-empty local folders from `uri` up to `root` included (object stores have
    no empty folders: nothing to do there)."""
    if not is_local(uri):
        return
    folder, top = local_path(uri), local_path(root)
    while folder == top or top in folder.parents:
        try:
            folder.rmdir()  # only when empty: another run may still use it
        except OSError:
            break
        folder = folder.parent


def upload_tree(local_folder: Path, uri: str) -> list[str]:
    """Copy every file below `local_folder` to the same relative place below `uri`."""
    written = []
    for path in sorted(local_folder.rglob("*")):
        if path.is_file():
            target = join(uri, path.relative_to(local_folder).as_posix())
            write_bytes(target, path.read_bytes())
            written.append(target)
    return written


def download_tree(uri: str, local_folder: Path) -> list[Path]:
    """Copy every file below `uri` to the same relative place below `local_folder`."""
    written = []
    for entry in list_files(uri):
        target = local_folder / relative_to(entry.uri, uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(read_bytes(entry.uri))
        written.append(target)
    return written


@contextlib.contextmanager
def local_folder_for(uri: str) -> Iterator[Path]:
    """A local folder whose files end up below `uri`: the folder itself when `uri` is local,
    else a temporary folder uploaded when the block ends without an error (for libraries that
    write only to local paths: Great Expectations, matplotlib, report writers)."""
    if is_local(uri):
        folder = local_path(uri)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="smar-upload-") as temporary:
        folder = Path(temporary)
        yield folder
        upload_tree(folder, uri)


def staged_folder(uri: str) -> tuple[Path, Callable[[], None]]:
    """A local folder for files that belong below `uri`, and the call that publishes them.

    Local `uri`: the folder itself, and publishing does nothing. Remote: a fresh temporary
    folder; publishing uploads its files below `uri` and removes it. For code that writes through
    libraries that only know local paths (torch checkpoints, LightGBM, matplotlib), in steps."""
    if is_local(uri):
        folder = local_path(uri)
        folder.mkdir(parents=True, exist_ok=True)
        return folder, lambda: None
    folder = Path(tempfile.mkdtemp(prefix="smar-stage-"))

    def publish() -> None:
        try:
            upload_tree(folder, uri)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return folder, publish


def cache_root() -> Path:
    """Where remote files are cached on this machine: `$SMAR_CACHE` (default ~/.cache/smar)."""
    return Path(os.environ.get("SMAR_CACHE") or Path.home() / ".cache" / "smar")


def cached_local_tree(uri: str) -> Path:
    """A local copy of the folder `uri`: the folder itself when local, else a copy under the
    machine's cache keyed by the URI. Use it for immutable, versioned folders (a model version, a
    run's artifact): a version is downloaded once per machine and never compared by time."""
    if is_local(uri):
        return local_path(uri)
    key = hashlib.sha256(uri.encode("utf-8")).hexdigest()[:24]
    target = cache_root() / "remote" / key
    complete = target / ".smar-complete"
    if complete.is_file():
        return target
    staging = target.with_name(f"{key}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        if not download_tree(uri, staging):
            raise FileNotFoundError(f"{uri}: no such folder, or it holds no files")
        (staging / ".smar-complete").write_text(uri + "\n")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def fsspec_filesystem(uri: str) -> Any:
    """An fsspec filesystem over pyarrow's for `uri` (for APIs that want fsspec, e.g. Airflow's
    ObjectStoragePath); paths inside it are `bucket/key`."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    filesystem, _ = resolve(normalize_location(uri))
    return ArrowFSWrapper(filesystem)

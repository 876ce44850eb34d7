"""Locations are URIs: normalising, refusing mangled ones, joining with URI rules.

Every location the settings hold (warehouse, artifacts, reports, landing roots) and every
location stored in a table is a URI string:

* a plain local path (`./warehouse`, `/data/lake`, `~/lake`) becomes the absolute `file:` URI of
  the folder it names (`file:///data/lake`), resolved against the working directory once;
* `file:///abs/path`, `s3://bucket/key`, `s3a://bucket/key`, `gs://bucket/key`,
  `abfss://container@account.dfs.core.windows.net/key` (and `abfs://`) are kept, with the
  scheme lower-cased and trailing slashes removed;
* anything else that holds `:/` (`s3a:/lake/x`, `s3:///lake`, `hdfs://nn/x`, `http://...`) is
  refused with `InputRefused`: `pathlib` would turn it into a local folder named `s3a:`.

Joining never goes through `pathlib` on a remote URI: `join(base, "bronze", "search_logs")`
appends `/`-separated segments, and a segment may not be empty, `.` or `..`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from smar.errors import InputRefused

#: Schemes the filesystem layer and the engines understand.
OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "gs", "abfs", "abfss"})
SUPPORTED_SCHEMES = frozenset({"file"} | OBJECT_STORE_SCHEMES)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def normalize_location(value: str | os.PathLike[str], *, what: str = "location") -> str:
    """`value` as a normalised URI (see the module docstring); `InputRefused` when mangled."""
    text = os.fspath(value).strip()
    if not text:
        raise InputRefused(f"{what}: an empty location")
    match = _SCHEME.match(text)
    if match is None:
        if ":/" in text or text.lower().startswith(tuple(f"{scheme}:" for scheme in SUPPORTED_SCHEMES - {"file"})):
            raise InputRefused(
                f"{what}: {text!r} is neither a local path nor a valid URI (expected e.g. s3://bucket/prefix "
                "or file:///absolute/path); refusing it rather than creating a local folder with that name"
            )
        return Path(text).expanduser().resolve().as_uri()
    scheme = match.group(1).lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise InputRefused(
            f"{what}: unsupported scheme {scheme!r} in {text!r}; use a local path or one of "
            + ", ".join(f"{name}://" for name in sorted(SUPPORTED_SCHEMES))
        )
    parts = urlsplit(text)
    if parts.query or parts.fragment:
        raise InputRefused(f"{what}: {text!r} carries a query or fragment; a location is scheme://bucket/key")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise InputRefused(f"{what}: {text!r} is not a file URI of an absolute path (file:///abs/path)")
        return Path(os.path.normpath(unquote(parts.path))).as_uri()
    if not parts.netloc or "/" in parts.netloc:
        raise InputRefused(f"{what}: {text!r} names no bucket or container ({scheme}://bucket/key)")
    segments = [segment for segment in parts.path.split("/") if segment]
    _check_segments(segments, what=what, text=text)
    return f"{scheme}://{parts.netloc}" + "".join(f"/{segment}" for segment in segments)


def _check_segments(segments: list[str], *, what: str, text: str) -> None:
    for segment in segments:
        if segment in (".", ".."):
            raise InputRefused(f"{what}: {text!r} holds a {segment!r} segment; give the location it means")


def join(base: str, *parts: str) -> str:
    """`base` with `/`-separated `parts` appended (`join("s3://lake/w", "bronze/logs")`).

    A part may hold `/` but no empty, `.` or `..` segment (a bug, not input, so `ValueError`)."""
    segments = [segment for part in parts for segment in part.split("/")]
    for segment in segments:
        if segment in ("", ".", ".."):
            raise ValueError(f"cannot join {parts!r} onto {base!r}: empty, '.' or '..' segment")
    if scheme_of(base) == "file":
        return base.rstrip("/") + "".join("/" + quote(segment) for segment in segments)
    return base.rstrip("/") + "".join("/" + segment for segment in segments)


def scheme_of(uri: str) -> str:
    """The URI's scheme (`file`, `s3`, ...)."""
    match = _SCHEME.match(uri)
    if match is None:
        raise ValueError(f"{uri!r} is not a normalised location (no scheme)")
    return match.group(1).lower()


def is_local(uri: str) -> bool:
    """Whether `uri` is on this machine's file system."""
    return scheme_of(uri) == "file"


def local_path(uri: str) -> Path:
    """The local path of a `file:` URI (`ValueError` for a remote one: a bug)."""
    if not is_local(uri):
        raise ValueError(f"{uri} is not on the local file system")
    return Path(unquote(urlsplit(uri).path))


def engine_location(uri: str) -> str:
    """What an engine and delta-rs are given: the plain path for a local URI (exactly what they
    were given before locations became URIs), the URI itself otherwise."""
    return str(local_path(uri)) if is_local(uri) else uri


def display(uri: str) -> str:
    """A location as people read it: a local path, or the URI."""
    return engine_location(uri)


def parent(uri: str) -> str:
    """The location one segment up (`s3://b/a/x` -> `s3://b/a`)."""
    head, _, tail = uri.rstrip("/").rpartition("/")
    if not tail or head.endswith(":/") or head.endswith(":"):
        raise ValueError(f"{uri} has no parent")
    return head


def name(uri: str) -> str:
    """The last segment (`s3://b/a/x.json` -> `x.json`)."""
    return unquote(uri.rstrip("/").rpartition("/")[2])


def relative_to(uri: str, base: str) -> str:
    """The `/`-separated path of `uri` below `base` (`ValueError` when it is not below it)."""
    prefix = base.rstrip("/") + "/"
    if not uri.startswith(prefix):
        raise ValueError(f"{uri} is not below {base}")
    return unquote(uri[len(prefix) :])

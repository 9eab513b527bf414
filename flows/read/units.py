"""What the read stage works with: its limits (``ReadConfig``), the files it reads, unit ids and rejects.

An input unit is a file (``.txt``, ``.md``, ``.html``, ``.htm``), one line of a ``.jsonl`` file, one
response record of a ``.warc`` file (each may be gzip-compressed, ``.gz``) or one row of a ``.parquet``
file. A unit that cannot be read becomes a ``Reject`` with a reason code; reading never raises for bad
input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import PurePosixPath

import xxhash
from pydantic import BaseModel, ConfigDict, Field

from flows.document import Reject
from flows.storage import local_path

STAGE = "read"
TEXT_SUFFIXES = {".txt": "text", ".md": "text", ".html": "html", ".htm": "html"}
CONTAINER_SUFFIXES = {".jsonl", ".warc"}
PARQUET = ".parquet"


class ReadConfig(BaseModel):
    """Limits for reading input units; each breach becomes a reject with its own reason."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    max_unit_bytes: int = Field(16 * 1024 * 1024, gt=0)
    """Largest unit (file, JSONL line, WARC body, Parquet cell) read, after decompression; larger:
    ``unit_too_large``."""
    max_inflated_bytes: int = Field(2 * 1024**3, gt=0)
    """Most bytes one ``.gz`` file may inflate to (gzip bombs); beyond: ``gzip_too_large``. For ``.warc.gz``
    (one gzip member per record) the limit is per member; a ``.warc`` line longer than ``max_unit_bytes``
    is ``warc_line_too_long`` (see ``_warc_precheck``)."""
    shard_files: int = Field(256, gt=0)
    """Most files in one shard (a shard is the unit of work of a task)."""
    shard_bytes: int = Field(16 * 1024 * 1024, gt=0)
    """Most input bytes (on disk) in one shard. A larger uncompressed JSONL file is cut at line starts into
    shards of about this size, a larger Parquet file between row groups; another larger file is a shard of
    its own. A shard is read and processed in chunks of about a quarter of this many characters of text,
    one being extracted while the one before is scored and staged; the plan's last four shards are a
    quarter of this size, so that the workers finish together. 16 MiB of HTML is ~140 pages, ~3 s of work
    per task against ~0.1 s of Prefect overhead per task (bench/e2e)."""



_FS_BYTES = "fsbytes:"


@dataclass(frozen=True, slots=True)
class InputFile:
    """A file to read: its absolute path (local) or URI (in a store), and its posix path relative to SOURCE.

    ``path`` is valid UTF-8 so that Prefect can send it as JSON: a non-UTF-8 local name travels as
    ``fsbytes:<hex of the path's bytes>`` (see ``_portable``), which ``os_path`` turns back.
    """

    path: str
    rel: str
    size: int
    start: int = 0
    """A piece of a large uncompressed JSONL file begins here (a byte offset at a line start); for a piece
    of a Parquet file, its first row group. 0 otherwise."""
    stop: int | None = None
    """The piece ends here (exclusive: just after a newline; for Parquet, a row group); None: at the end."""
    first_line: int = 1
    """Line (Parquet: row) number of the piece's first unit: its units keep the ids they have when the file
    is read whole."""
    etag: str | None = None
    """The object's ETag when it is in a store (as listed, quotes included); None for a local file. With
    ``size`` it tells an unchanged object without downloading it."""


@dataclass(frozen=True, slots=True)
class Discovery:
    """What SOURCE holds: the files to read, and rejects for entries that cannot be read at all."""

    root: str
    files: list[InputFile]
    rejects: list[Reject]


class SourceError(ValueError):
    """SOURCE itself is unusable (missing, or matches nothing): the run cannot start."""


class UnitError(Exception):
    """A unit cannot be read: carries the reject reason code and a sentence for people."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail



def unit_id(source_uri: str, payload: bytes) -> str:
    """Stable id of a unit: the same bytes from the same place give the same id on every run."""
    return xxhash.xxh3_128_hexdigest(source_uri.encode("utf-8", "surrogateescape") + b"\0" + payload)


def fail(source_uri: str, reason: str, detail: str) -> Reject:
    """A reject for a unit whose bytes could not be read: its id derives from place and reason."""
    detail = detail.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")  # non-UTF-8 paths
    return Reject(unit_id(source_uri, f"unreadable:{reason}".encode()), source_uri, STAGE, reason, detail)


def unit_kind(name: str) -> tuple[str, bool]:
    """Return (suffix without .gz, gzipped?) for a file name, lower-cased."""
    lower = name.lower()
    gzipped = lower.endswith(".gz")
    stem = lower[:-3] if gzipped else lower
    return PurePosixPath(stem).suffix, gzipped



def portable(path: str) -> str:
    """``path`` as valid UTF-8: unchanged, or for a non-UTF-8 name (lone surrogates) its bytes in hex."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return _FS_BYTES + os.fsencode(path).hex()
    return path


def os_path(item: InputFile) -> str | bytes:
    """The local path to open for ``item`` (bytes for a non-UTF-8 name)."""
    if item.path.startswith(_FS_BYTES):
        return bytes.fromhex(item.path[len(_FS_BYTES):])
    return local_path(item.path)


"""Read stage: find the input files under SOURCE, split them into shards, turn bytes into documents.

An input unit is a file (``.txt``, ``.md``, ``.html``, ``.htm``), one line of a ``.jsonl`` file, one
response record of a ``.warc`` file (each may be gzip-compressed, ``.gz``) or one row of a ``.parquet``
file. A unit that cannot be read becomes a ``Reject`` with a reason code; reading never raises for bad
input. SOURCE is a local path or a URI (``file://``, ``s3://``, ``gs://``, ``az://``...): objects in a
store are listed once (names, sizes, ETags) and streamed through fsspec (``flows.storage``); a failure
of the store itself (network, credentials) raises ``StorageError`` and fails the shard, so that a retry
or the next run reads the file again instead of filing it as a bad input.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import posixpath
import re
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash
from pydantic import BaseModel, ConfigDict, Field
from warcio.archiveiterator import ArchiveIterator

from flows import storage
from flows.document import Document, Kind, Reject
from flows.read.decode import DecodeError, decode_bytes
from flows.storage import StorageError, unreachable_message

STAGE = "read"
_TEXT_SUFFIXES = {".txt": "text", ".md": "text", ".html": "html", ".htm": "html"}
_CONTAINER_SUFFIXES = {".jsonl", ".warc"}
_PARQUET = ".parquet"
_GLOB_CHARS = set("*?[")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


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
    per task against ~0.1 s of Prefect overhead per task (bench/e2e.py)."""


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


def _fail(source_uri: str, reason: str, detail: str) -> Reject:
    """A reject for a unit whose bytes could not be read: its id derives from place and reason."""
    detail = detail.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")  # non-UTF-8 paths
    return Reject(unit_id(source_uri, f"unreadable:{reason}".encode()), source_uri, STAGE, reason, detail)


def _unit_kind(name: str) -> tuple[str, bool]:
    """Return (suffix without .gz, gzipped?) for a file name, lower-cased."""
    lower = name.lower()
    gzipped = lower.endswith(".gz")
    stem = lower[:-3] if gzipped else lower
    return PurePosixPath(stem).suffix, gzipped


# -- discovery -------------------------------------------------------------------------------


def discover(source: str, options: Mapping[str, Any] | None = None) -> Discovery:
    """List the files SOURCE names: a file, a directory (recursive) or a glob pattern.

    SOURCE may be a URI: ``file://`` is a local path; in a store (``s3://``...) a single object, a prefix
    (read recursively) or a glob (``s3://bucket/crawl/2026-12-*/**/*.warc.gz``), listed without reading
    any object. ``options`` are the store's fsspec storage options (credentials, endpoint).
    """
    if storage.is_remote(source):
        return _discover_remote(source, options)
    source = storage.local_path(source)
    path = Path(source)
    if path.is_file():
        root = path.resolve().parent
        return Discovery(str(root), [_input_file(path.resolve(), root)], [])
    if path.is_dir():
        return _walk(path.resolve())
    if _GLOB_CHARS & set(source):
        return _glob(source)
    raise SourceError(
        f"SOURCE {source!r} does not exist: pass a file, a directory or a glob pattern such as 'inbox/**/*.jsonl'."
    )


def _input_file(path: Path, root: Path) -> InputFile:
    return InputFile(_portable(str(path)), _uri(path, root), path.stat().st_size)


def _glob(pattern: str) -> Discovery:
    prefix_parts = []
    for part in Path(pattern).parts:
        if _GLOB_CHARS & set(part):
            break
        prefix_parts.append(part)
    root = Path(*prefix_parts).resolve() if prefix_parts else Path.cwd()
    matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))  # noqa: PTH207 - absolute patterns
    files = [_input_file(m.resolve(), root) for m in matches if m.is_file() and _inside(m.resolve(), root)]
    if not files:
        raise SourceError(f"the pattern {pattern!r} matches no file: check it, "
                          "and quote it so the shell does not expand it.")
    return Discovery(str(root), files, [])


def _uri(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, posix, as valid UTF-8: bytes of a non-UTF-8 file name become ``\\xNN``.

    ``os`` hands such names over with lone surrogates, which Parquet (UTF-8) cannot store.
    """
    rel = path.relative_to(root).as_posix()
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _portable(path: str) -> str:
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
    return storage.local_path(item.path)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _walk(root: Path) -> Discovery:
    """Walk ``root`` without following symlinks out of it or around a loop."""
    files: list[InputFile] = []
    rejects: list[Reject] = []
    seen_dirs: set[str] = set()

    def on_error(err: OSError) -> None:
        rel = _uri(Path(err.filename), root) if err.filename else "."
        rejects.append(_fail(rel, "unreadable", f"cannot list directory: {err.strerror}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs or not _inside(Path(real), root):
            rel = _uri(Path(dirpath), root)
            reason = "symlink_loop" if real in seen_dirs else "outside_source"
            rejects.append(_fail(rel, reason, f"directory link leads to {real}, which is skipped"))
            dirnames.clear()
            continue
        seen_dirs.add(real)
        dirnames.sort()
        for name in sorted(filenames):
            file_or_reject = _walk_entry(Path(dirpath) / name, root)
            (files if isinstance(file_or_reject, InputFile) else rejects).append(file_or_reject)  # type: ignore[arg-type]
    return Discovery(str(root), files, rejects)


def _walk_entry(path: Path, root: Path) -> InputFile | Reject:
    rel = _uri(path, root)
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as err:
        return _fail(rel, "broken_link", f"cannot resolve the path: {err}")
    if not _inside(real, root):
        return _fail(rel, "outside_source", f"links to {real}, outside SOURCE; not read")
    if not real.is_file():
        return _fail(rel, "not_a_file", "not a regular file (device, socket or fifo)")
    return InputFile(_portable(str(path)), rel, real.stat().st_size)


# -- discovery in an object store -------------------------------------------------------------


def _discover_remote(source: str, options: Mapping[str, Any] | None) -> Discovery:
    """List SOURCE in a store: one listing request per 1,000 objects, sizes and ETags included."""
    fs, path = storage.filesystem(source, options)
    protocol = storage.scheme(source)
    try:
        if _GLOB_CHARS & set(path):
            root = _fixed_prefix(path)
            found = fs.glob(path, detail=True)
            order = _glob_order
        else:
            info = fs.info(path)
            if info.get("type") == "file":
                root, found = posixpath.dirname(path), {path: info}
            else:
                root, found = path, fs.find(path, detail=True)
            order = _walk_order
    except Exception as err:
        missing = "does not exist: no object has this name or prefix"
        raise SourceError(f"SOURCE {unreachable_message(source, err, missing)}") from err
    files = [_remote_file(protocol, name, info, root) for name, info in found.items() if _is_object(name, info, root)]
    if not files:
        raise SourceError(f"SOURCE {source!r} matches no object: check the prefix or pattern "
                          "(quote a pattern so the shell does not expand it).")
    return Discovery(f"{protocol}://{root}", sorted(files, key=lambda f: order(f.rel)), [])


def _fixed_prefix(pattern: str) -> str:
    """The folders of ``pattern`` before its first wildcard: the root that ``rel`` is relative to."""
    parts = pattern.split("/")
    fixed = next(i for i, part in enumerate(parts) if _GLOB_CHARS & set(part))
    return "/".join(parts[:fixed])


def _is_object(name: str, info: Mapping[str, Any], root: str) -> bool:
    # Folder placeholders (keys ending in "/", made by consoles) and prefixes are not objects.
    return info.get("type") == "file" and not name.endswith("/") and name.startswith(root + "/")


def _remote_file(protocol: str, name: str, info: Mapping[str, Any], root: str) -> InputFile:
    etag = info.get("ETag") or info.get("etag")
    return InputFile(f"{protocol}://{name}", name[len(root) + 1:], int(info["size"]), etag=etag and str(etag))


def _walk_order(rel: str) -> list[tuple[int, str]]:
    """The order ``_walk`` finds files in (a folder's files by name, then its folders by name), so that a
    store's SOURCE gives the same shards, in the same order, as the same tree on disk."""
    *folders, name = rel.split("/")
    return [(1, folder) for folder in folders] + [(0, name)]


def _glob_order(rel: str) -> list[tuple[int, str]]:
    return [(0, part) for part in rel.split("/")]  # as ``sorted(Path(...))`` orders local matches


# -- shards ----------------------------------------------------------------------------------


def plan_shards(files: list[InputFile], config: ReadConfig,
                options: Mapping[str, Any] | None = None) -> list[list[InputFile]]:
    """Group files into shards of at most ``shard_files`` files and about ``shard_bytes`` bytes; the last
    few shards are smaller (``TAIL_SHARDS``), so that no worker is left alone with a whole shard at the end.

    An uncompressed JSONL file larger than ``shard_bytes`` is split at line starts into pieces of about
    that size, each a shard: every worker can take part in one big dump; a Parquet file likewise, between
    row groups. (A compressed file or a WARC cannot be entered in the middle: it stays one shard, read in
    chunks.) A big JSONL file is scanned once for line starts here (streamed, also from a store, with
    the storage ``options``); a Parquet file's row groups are in its footer.
    """
    shards = _group([piece for whole in files for piece in _pieces(whole, config.shard_bytes, options)],
                    config.shard_files, config.shard_bytes)
    if len(shards) <= TAIL_SHARDS:
        return shards
    # The workers should finish together: the last shards are planned again at a fraction of the size,
    # so the one still running when the others run out of work is short (a whole file stands for itself).
    small = max(1, config.shard_bytes // TAIL_SPLIT)
    tail = [item for shard in shards[-TAIL_SHARDS:] for item in shard]
    tail = [piece for item in tail
            for piece in (_pieces(item, small, options) if item.start == 0 and item.stop is None else [item])]
    return shards[:-TAIL_SHARDS] + _group(tail, config.shard_files, small)


# The last TAIL_SHARDS shards of a plan are cut TAIL_SPLIT times smaller.
TAIL_SHARDS = 4
TAIL_SPLIT = 4


def _group(items: list[InputFile], max_files: int, max_bytes: int) -> list[list[InputFile]]:
    """Consecutive items in shards of at most ``max_files`` files and about ``max_bytes`` bytes."""
    shards: list[list[InputFile]] = []
    current: list[InputFile] = []
    current_bytes = 0
    for item in items:
        if current and (len(current) >= max_files or current_bytes + item.size > max_bytes):
            shards.append(current)
            current, current_bytes = [], 0
        current.append(item)
        current_bytes += item.size
    if current:
        shards.append(current)
    return shards


# Bytes read at a time while a large JSONL file is scanned for piece boundaries.
_SCAN_BLOCK = 1 << 22


def _pieces(item: InputFile, limit: int, options: Mapping[str, Any] | None) -> list[InputFile]:
    """``item`` cut at line starts (Parquet: between row groups) into pieces of at least ``limit`` bytes,
    or ``[item]`` when it is not a large uncompressed JSONL or Parquet file (or cannot be read now:
    reading it will say why)."""
    suffix, gzipped = _unit_kind(item.rel)
    if suffix not in (".jsonl", _PARQUET) or gzipped or item.size <= limit:
        return [item]
    try:
        if suffix == _PARQUET:
            return _row_group_pieces(item, limit, options)
        return _line_aligned_pieces(item, limit, options)
    except (OSError, pa.ArrowException):
        return [item]


def _line_aligned_pieces(item: InputFile, limit: int, options: Mapping[str, Any] | None) -> list[InputFile]:
    pieces: list[InputFile] = []
    start, first_line = 0, 1
    block_start, line_at_block = 0, 1
    with _open_raw(item, options) as handle:
        while block := handle.read(_SCAN_BLOCK):
            # The next cut is just after the first newline at least ``limit`` bytes past ``start``.
            while (at := block.find(b"\n", max(0, start + limit - 1 - block_start))) >= 0:
                cut = block_start + at + 1
                pieces.append(_piece(item, start, cut, first_line))
                start, first_line = cut, line_at_block + block.count(b"\n", 0, at + 1)
            line_at_block += block.count(b"\n")
            block_start += len(block)
    if start < block_start or not pieces:
        pieces.append(_piece(item, start, None, first_line))
    return pieces


def _piece(item: InputFile, start: int, stop: int | None, first_line: int) -> InputFile:
    size = (stop if stop is not None else item.size) - start
    return InputFile(item.path, item.rel, size, start, stop, first_line, item.etag)


def _row_group_pieces(item: InputFile, limit: int, options: Mapping[str, Any] | None) -> list[InputFile]:
    """Consecutive row groups of at least ``limit`` bytes (compressed, as stored) each; ``size`` is theirs."""
    with _open_raw(item, options) as handle:
        metadata = pq.ParquetFile(handle).metadata
    pieces: list[InputFile] = []
    start = size = 0
    first_row = row = 1
    for group in range(metadata.num_row_groups):
        size += stored_size(metadata.row_group(group))
        row += metadata.row_group(group).num_rows
        if size >= limit or group == metadata.num_row_groups - 1:
            stop = group + 1 if group < metadata.num_row_groups - 1 else None
            pieces.append(InputFile(item.path, item.rel, size, start, stop, first_row, item.etag))
            start, size, first_row = group + 1, 0, row
    return pieces if len(pieces) > 1 else [item]


def stored_size(row_group: Any) -> int:
    """Bytes a Parquet row group takes in its file (compressed): what a piece's ``size`` counts."""
    return sum(row_group.column(c).total_compressed_size for c in range(row_group.num_columns))


# -- reading units ---------------------------------------------------------------------------


def read_shard(files: list[InputFile], config: ReadConfig,
               options: Mapping[str, Any] | None = None) -> tuple[list[Document], list[Reject]]:
    """Read every unit of every file in a shard (``options``: storage options for files in a store)."""
    docs: list[Document] = []
    rejects: list[Reject] = []
    for unit in iter_units(files, config, options):
        (docs if isinstance(unit, Document) else rejects).append(unit)  # type: ignore[arg-type]
    return docs, rejects


def iter_units(files: list[InputFile], config: ReadConfig,
               options: Mapping[str, Any] | None = None) -> Iterator[Document | Reject]:
    """Every unit of every file in a shard, one at a time (a JSONL, WARC or Parquet file is read as a
    stream). Raises ``StorageError`` when a store fails mid-read; bad input is a ``Reject``."""
    for item, fetched in _with_prefetch(files, options):
        yield from _read_file(item, config, options, fetched)


def _read_file(item: InputFile, config: ReadConfig, options: Mapping[str, Any] | None,
               fetched: Future[bytes] | None = None) -> Iterator[Document | Reject]:
    suffix, gzipped = _unit_kind(item.rel)
    if not (suffix in _TEXT_SUFFIXES or suffix in _CONTAINER_SUFFIXES or (suffix == _PARQUET and not gzipped)):
        yield _fail(item.rel, "unsupported_type", f"suffix {suffix or '(none)'!r}{' .gz' if gzipped else ''} "
                    "is not read; supported: .txt .md .html .htm .jsonl .warc, each optionally .gz, and "
                    ".parquet (compressed inside, never .gz)")
        return
    # warcio inflates .warc.gz itself, record by record, so offsets are those of the file on disk.
    inflate_here = gzipped and suffix != ".warc"
    try:
        if suffix == _PARQUET:
            yield from _read_parquet(item, config, options, fetched)
            return
        if suffix == ".warc":
            _warc_precheck(item, gzipped, config, options, fetched)
        with _open(item, inflate_here, config, options, fetched) as stream:
            if suffix == ".jsonl":
                yield from _read_jsonl(_window(stream, item), item.rel, config, item.first_line)
            elif suffix == ".warc":
                yield from _read_warc(stream, item, config)
            else:
                payload = _read_limited(stream, config.max_unit_bytes)
                yield _text_unit(item.rel, payload, _TEXT_SUFFIXES[suffix], None, None)  # type: ignore[arg-type]
    except UnitError as err:
        yield _fail(item.rel, err.reason, err.detail)
    except OSError as err:  # a local read error, or an object deleted since it was listed
        yield _fail(item.rel, "unreadable", f"cannot read the file: {err.strerror or err}")


# -- opening local files and objects in a store ----------------------------------------------

# An object up to this size is fetched whole in one GET (no HEAD first: most pages and small files),
# ahead of the reading and several at once; a larger one is streamed in ranges of this size, one
# buffer held at a time (moto on 127.0.0.1: 100 MB in 2.0 s with 8 MiB ranges, 1.0 s with 32 MiB).
_REMOTE_BLOCK = 16 << 20
# Whole objects fetched ahead of the reading: at most this many bytes and objects in flight, on this
# many threads. A GET costs one round trip (10-50 ms on S3; 20 ms on moto), far more than reading a
# page takes: fetched one after the other, 2,000 pages would wait 40-100 s.
_PREFETCH_BYTES = 32 << 20
_PREFETCH_OBJECTS = 64
_FETCH_THREADS = 16


def _fetched_whole(item: InputFile) -> bool:
    """A small object in a store, whole (a piece's ``size`` is the piece's: it is streamed in ranges)."""
    return item.size <= _REMOTE_BLOCK and item.start == 0 and item.stop is None and storage.is_remote(item.path)


def _with_prefetch(files: list[InputFile],
                   options: Mapping[str, Any] | None) -> Iterator[tuple[InputFile, Future[bytes] | None]]:
    """Each file, with the fetch of its bytes when it is a small object in a store, started ahead."""
    if not any(_fetched_whole(item) for item in files):
        yield from ((item, None) for item in files)  # local files: nothing to wait for
        return
    pool = ThreadPoolExecutor(_FETCH_THREADS, thread_name_prefix="siftlake-fetch")
    filesystems: dict[str, Any] = {}  # by scheme: making one costs ~0.7 ms, a GET ~3.5 ms of CPU
    fetches: dict[int, Future[bytes]] = {}
    ahead = in_flight = 0
    try:
        for index, item in enumerate(files):
            while ahead < len(files) and (ahead <= index or (
                    in_flight < _PREFETCH_BYTES and len(fetches) < _PREFETCH_OBJECTS)):
                if _fetched_whole(files[ahead]):
                    uri = files[ahead].path
                    fs = filesystems.get(storage.scheme(uri)) or storage.filesystem(uri, options)[0]
                    filesystems[storage.scheme(uri)] = fs
                    fetches[ahead] = pool.submit(_fetch, uri, fs)
                    in_flight += files[ahead].size
                ahead += 1
            fetched = fetches.pop(index, None)
            in_flight -= item.size if fetched is not None else 0
            yield item, fetched
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _fetch(uri: str, fs: Any) -> bytes:
    """The whole object at ``uri`` in one GET."""
    # s3fs asks for the size (a HEAD) before each GET unless told to fetch in one request: one round
    # trip instead of two (moto: 20 -> 8 ms a page, and 6.6 -> 3.6 ms of client CPU).
    single = {"max_concurrency": 1} if storage.scheme(uri) in ("s3", "s3a") else {}
    return bytes(_store_call(uri, lambda: fs.cat_file(fs._strip_protocol(uri), **single)))


def _open_raw(item: InputFile, options: Mapping[str, Any] | None, fetched: Future[bytes] | None = None) -> IO[bytes]:
    """The file's bytes as stored (not inflated): a local file, or an object from its store (fetched
    whole, or streamed in ranges)."""
    if fetched is not None:
        return io.BytesIO(fetched.result())  # raises what the fetch raised
    if not storage.is_remote(item.path):
        return open(os_path(item), "rb")
    fs, path = storage.filesystem(item.path, options)
    if _fetched_whole(item):
        return io.BytesIO(_fetch(item.path, fs))
    # A piece of a big object asks for about its own bytes (ranges read ahead by one block).
    block = min(_REMOTE_BLOCK, max(item.size, 1 << 20))
    return io.BufferedReader(_RemoteFile(item.path, fs, path, block), buffer_size=1 << 16)


def _store_call(uri: str, call: Any) -> Any:
    """``call()``, with any failure of the store but a missing object (a reject) raised as ``StorageError``."""
    try:
        return call()
    except FileNotFoundError:
        raise
    except Exception as err:
        raise StorageError(f"{uri}: reading from the store failed ({type(err).__name__}: {err}); check the "
                           "network, the endpoint and the credentials; a re-run reads the file again") from err


class _RemoteFile(io.RawIOBase):
    """An object in a store, read in ranges through fsspec; a failure of the store is a ``StorageError``."""

    def __init__(self, uri: str, fs: Any, path: str, block: int) -> None:
        self._uri = uri
        self._file = _store_call(uri, lambda: fs.open(path, "rb", block_size=block))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._file.seek(offset, whence))

    def tell(self) -> int:
        return int(self._file.tell())

    def readinto(self, buffer: Any) -> int:
        data = _store_call(self._uri, lambda: self._file.read(len(buffer)))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


class _InflateLimit(io.RawIOBase):
    """A gzip stream that fails once it has inflated more than a limit, and names gzip faults."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self._raw = raw
        self._gz = gzip.GzipFile(fileobj=raw, mode="rb")
        self._limit = limit
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._gz.read(len(buffer))
        except EOFError as err:
            raise UnitError("gzip_truncated", f"the gzip stream ends early ({err}); the file is cut off") from err
        except (gzip.BadGzipFile, zlib.error) as err:
            raise UnitError("gzip_invalid", f"not a valid gzip stream: {err}") from err
        self._count += len(data)
        if self._count > self._limit:
            raise UnitError("gzip_too_large", f"inflates past {self._limit} bytes (max_inflated_bytes); a gzip bomb?")
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._gz.close()
        self._raw.close()
        super().close()


def _open(item: InputFile, gzipped: bool, config: ReadConfig, options: Mapping[str, Any] | None,
          fetched: Future[bytes] | None) -> IO[bytes]:
    raw = _open_raw(item, options, fetched)
    if gzipped:
        return io.BufferedReader(_InflateLimit(raw, config.max_inflated_bytes), buffer_size=1 << 16)
    return raw


def _read_limited(stream: IO[bytes], limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    # Some streams (WARC record bodies) return short reads: loop until EOF or past the limit.
    while size <= limit and (chunk := stream.read(min(1 << 20, limit + 1 - size))):
        chunks.append(chunk)
        size += len(chunk)
    payload = b"".join(chunks)
    if len(payload) > limit:
        raise UnitError("unit_too_large", f"larger than {limit} bytes (max_unit_bytes)")
    return payload


def _text_unit(source_uri: str, payload: bytes, kind: Kind, url: str | None, charset: str | None) -> Document | Reject:
    uid = unit_id(source_uri, payload)
    try:
        text = decode_bytes(payload, is_html=kind == "html", declared=charset)
    except DecodeError as err:
        return Reject(uid, source_uri, STAGE, err.reason, err.detail)
    return Document(doc_id=uid, source_uri=source_uri, text=text, kind=kind, url=url, meta={"bytes": len(payload)})


class _Window(io.RawIOBase):
    """At most ``size`` bytes of ``stream``, from where it stands: one piece of a split file."""

    def __init__(self, stream: IO[bytes], size: int) -> None:
        self._stream, self._left = stream, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(min(len(buffer), self._left)) if self._left > 0 else b""
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def _window(stream: IO[bytes], item: InputFile) -> IO[bytes]:
    """The part of an opened file that ``item`` stands for: all of it, or one piece."""
    if item.start == 0 and item.stop is None:
        return stream
    stream.seek(item.start)
    size = item.stop - item.start if item.stop is not None else 1 << 62
    return io.BufferedReader(_Window(stream, size), buffer_size=1 << 16)


def _read_jsonl(stream: IO[bytes], rel: str, config: ReadConfig, first_line: int = 1) -> Iterator[Document | Reject]:
    for number, line in enumerate(_lines(stream, config.max_unit_bytes), start=first_line):
        source_uri = f"{rel}#L{number}"
        if isinstance(line, UnitError):
            yield _fail(source_uri, line.reason, line.detail)
        elif line.strip():
            yield _jsonl_unit(source_uri, line)


def _lines(stream: IO[bytes], limit: int) -> Iterator[bytes | UnitError]:
    """Yield lines (without the newline); a line over ``limit`` bytes is skipped and yields an error."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := stream.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield UnitError("unit_too_large", f"line longer than {limit} bytes (max_unit_bytes)")
            continue
        yield line.rstrip(b"\r\n")


def _scrub(value: str) -> str:
    """Replace lone surrogates (JSON may escape them, ``"\\ud800"``; UTF-8 cannot hold them) with U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", value)


def _may_hold_surrogates(line: bytes) -> bool:
    """False when ``json.loads(line)`` cannot contain a lone surrogate: no ``\\uD800``-``\\uDFFF`` escape, no
    UTF-8-encoded surrogate (``json`` decodes with ``surrogatepass``), no NUL (a UTF-16/32 line). Saves a scan of
    most pages (many escape other characters, ``\\u00e9``, ``\\u2019``)."""
    return b"\\ud" in line or b"\\uD" in line or b"\xed" in line or b"\x00" in line


def _jsonl_unit(source_uri: str, line: bytes) -> Document | Reject:
    uid = unit_id(source_uri, line)
    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as err:
        return Reject(uid, source_uri, STAGE, "jsonl_invalid_json", f"the line is not valid JSON: {err}")
    if not isinstance(record, dict):
        return Reject(uid, source_uri, STAGE, "jsonl_not_object", "the line is JSON but not an object")
    field, kind = ("html", "html") if "html" in record and "text" not in record else ("text", "text")
    body = record.get(field)
    if body is None:
        return Reject(uid, source_uri, STAGE, "jsonl_missing_text",
                      "the object has neither a 'text' nor an 'html' field")
    bad = [k for k in (field, "url", "id", "title") if k in record and not isinstance(record[k], str | type(None))]
    if bad or not isinstance(body, str):
        return Reject(uid, source_uri, STAGE, "jsonl_bad_field", f"field(s) {bad or [field]} must be strings")
    url, title = record.get("url"), record.get("title")
    if _may_hold_surrogates(line):
        body, url, title = _scrub(body), url and _scrub(url), title and _scrub(title)
    doc = Document(doc_id=uid, source_uri=source_uri, text=body, kind=kind,  # type: ignore[arg-type]
                   url=url, title=title, meta={"bytes": len(line)})
    if record.get("id") is not None:
        doc.meta["input_id"] = record["id"]
    return doc


def _read_warc(stream: IO[bytes], item: InputFile, config: ReadConfig) -> Iterator[Document | Reject]:
    rel = item.rel
    iterator = ArchiveIterator(stream)
    try:
        for record in iterator:
            if record.format != "warc":
                # warcio falls back to the legacy ARC format for anything that is not WARC.
                yield _fail(f"{rel}#{iterator.offset}", "warc_invalid", "not a WARC record (no 'WARC/' header line)")
                return
            if record.rec_type == "response":
                yield _warc_record(iterator, record, rel, config)
    except StorageError:
        raise  # the store failed, not the file
    # warcio parses hostile bytes: any exception it raises means a damaged file, never a crashed run.
    except Exception as err:
        offset = iterator.offset
        yield _fail(f"{rel}#{offset}", "warc_truncated",
                    f"the WARC file is damaged after offset {offset}: {type(err).__name__}: {err}; "
                    "the records before it were read")
        return
    size = item.size  # as listed; the same as the file's size unless it changed since
    if iterator.offset < size:  # a gzip member cut off: warcio stops without an error
        yield _fail(f"{rel}#{iterator.offset}", "warc_truncated",
                    f"the WARC file ends inside a record after offset {iterator.offset} (of {size} bytes)")


def _warc_precheck(item: InputFile, gzipped: bool, config: ReadConfig, options: Mapping[str, Any] | None,
                   fetched: Future[bytes] | None) -> None:
    """Refuse a WARC file that would make warcio fill memory, reading it once in bounded memory.

    warcio reads header lines whole: inflated bytes without a newline (a gzip bomb of zeros) would be
    held in memory. A line longer than ``max_unit_bytes`` refuses the file (``warc_line_too_long``),
    so does a gzip member that inflates past ``max_inflated_bytes`` (``gzip_too_large``; WARC files
    hold one member per record). Damage is left to the main pass, which reports where it is.
    """
    line = member = 0
    inflater = zlib.decompressobj(31) if gzipped else None
    pending = b""
    with _open_raw(item, options, fetched) as raw:
        while pending or (pending := raw.read(1 << 20)):
            if inflater is None:
                out, pending = pending, b""
            else:
                try:
                    out = inflater.decompress(pending, 1 << 20)
                except zlib.error:
                    return
                pending = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
            member += len(out)
            if member > config.max_inflated_bytes:
                raise UnitError("gzip_too_large", f"a record inflates past {config.max_inflated_bytes} bytes "
                                "(max_inflated_bytes); a gzip bomb?")
            newline = out.rfind(b"\n")
            line = len(out) - newline - 1 if newline >= 0 else line + len(out)
            if line > config.max_unit_bytes:
                raise UnitError("warc_line_too_long", f"holds a line longer than {config.max_unit_bytes} bytes "
                                "(max_unit_bytes), which is no WARC header; a gzip bomb?")
            if inflater is not None and inflater.eof:
                inflater, member = zlib.decompressobj(31), 0


def _warc_record(iterator: ArchiveIterator, record: Any, rel: str, config: ReadConfig) -> Document | Reject:
    # Read the body before asking for the offset: warcio's get_record_offset() consumes the record.
    body: bytes | UnitError
    try:
        body = _read_limited(record.content_stream(), config.max_unit_bytes)
        if getattr(record.raw_stream, "limit", 0) > 0:
            body = UnitError("warc_truncated", "the record ends before its Content-Length: the file is cut off")
    except UnitError as err:
        body = err
    return _warc_unit(record, body, f"{rel}#{iterator.get_record_offset()}")


def _warc_unit(record: Any, body: bytes | UnitError, source_uri: str) -> Document | Reject:
    if isinstance(body, UnitError):
        return _fail(source_uri, body.reason, body.detail)
    url = record.rec_headers.get_header("WARC-Target-URI")
    content_type = (record.http_headers.get_header("Content-Type") if record.http_headers else None) or ""
    mime = content_type.split(";")[0].strip().lower()
    if mime and mime not in {"text/html", "application/xhtml+xml", "text/plain"}:
        return Reject(unit_id(source_uri, body), source_uri, STAGE, "unsupported_content_type",
                      f"the response is {mime}, not HTML or text")
    charset = _header_charset(content_type)
    return _text_unit(source_uri, body, "text" if mime == "text/plain" else "html", url, charset)


def _header_charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


# -- Parquet ---------------------------------------------------------------------------------

_PARQUET_OPTIONAL = ("id", "url", "title")
# Rows decoded at a time: Arrow holds one row group's column chunks (as stored) and this many rows decoded.
_PARQUET_BATCH_ROWS = 128


def _read_parquet(item: InputFile, config: ReadConfig, options: Mapping[str, Any] | None,
                  fetched: Future[bytes] | None) -> Iterator[Document | Reject]:
    """One unit per row, a row group at a time, from a ``text`` (or else ``html``) string column with
    optional ``id``, ``url`` and ``title`` string columns; ``source_uri`` is ``rel#R<row>``, rows numbered
    from 1 over the whole file (as JSONL lines are)."""
    with _open_raw(item, options, fetched) as handle:
        try:
            parquet = pq.ParquetFile(handle)
        except (pa.ArrowException, OSError) as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise UnitError("parquet_invalid", f"not a readable Parquet file: {err}") from err
        field, columns = _parquet_columns(parquet.schema_arrow)
        groups = range(item.start, item.stop if item.stop is not None else parquet.metadata.num_row_groups)
        row = item.first_line
        for group in groups:
            try:
                for batch in parquet.iter_batches(_PARQUET_BATCH_ROWS, row_groups=[group], columns=columns,
                                                  use_threads=False):
                    yield from _parquet_batch(batch, field, f"{item.rel}#R", row, config)
                    row += batch.num_rows
            except (pa.ArrowException, OSError) as err:
                yield _fail(f"{item.rel}#R{row}", "parquet_invalid",
                            f"row group {group} is damaged at row {row} ({type(err).__name__}: {err}); "
                            "the rows before it were read, the rest of the file is not")
                return


def _parquet_columns(schema: pa.Schema) -> tuple[str, list[str]]:
    """The body column (``text``, else ``html``) and every column read; a wrong schema is a ``UnitError``."""
    names = set(schema.names)
    field = "text" if "text" in names or "html" not in names else "html"
    if field not in names:
        raise UnitError("parquet_missing_text", f"the file has neither a 'text' nor an 'html' column "
                        f"(columns: {', '.join(schema.names[:20])})")
    columns = [field] + [name for name in _PARQUET_OPTIONAL if name in names]
    bad = [f"{name} ({schema.field(name).type})" for name in columns if not _string_type(schema.field(name).type)]
    if bad:
        raise UnitError("parquet_bad_field", f"column(s) {', '.join(bad)} must hold strings")
    return field, columns


def _string_type(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
                or pa.types.is_null(kind))


def _parquet_batch(batch: pa.RecordBatch, field: str, prefix: str, first_row: int,
                   config: ReadConfig) -> Iterator[Document | Reject]:
    bodies = _as_bytes(batch.column(field))
    sizes = pc.binary_length(bodies).to_pylist()
    too_large = [size is not None and size > config.max_unit_bytes for size in sizes]
    # A cell over the limit is never copied out of Arrow: only the others are.
    values = [None if large else value.as_py() for value, large in zip(bodies, too_large, strict=True)] \
        if any(too_large) else bodies.to_pylist()
    extras = {name: batch.column(name).to_pylist() for name in _PARQUET_OPTIONAL if name in batch.schema.names}
    kind: Kind = "html" if field == "html" else "text"
    for index, (body, large) in enumerate(zip(values, too_large, strict=True)):
        source_uri = f"{prefix}{first_row + index}"
        if large:
            yield _fail(source_uri, "unit_too_large", f"the {field!r} cell is larger than "
                        f"{config.max_unit_bytes} bytes (max_unit_bytes)")
            continue
        row = {name: column[index] for name, column in extras.items()}
        yield _parquet_unit(source_uri, field, kind, body, row)


def _as_bytes(column: pa.Array) -> pa.Array:
    """A string column as binary (no copy): the raw UTF-8 bytes hash into the unit's id."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_large_string(column.type):
        return column.cast(pa.large_binary())
    if pa.types.is_string_view(column.type):
        column = column.cast(pa.string())
    return column.cast(pa.binary())


def _parquet_unit(source_uri: str, field: str, kind: Kind, body: bytes | None,
                  row: dict[str, str | None]) -> Document | Reject:
    uid = unit_id(source_uri, _row_payload(field, body, row))
    if body is None:
        return Reject(uid, source_uri, STAGE, "empty", f"the {field!r} cell is null")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:  # Arrow does not check what a writer put in a string column
        return Reject(uid, source_uri, STAGE, "parquet_bad_field", f"the {field!r} cell is not valid UTF-8: {err}")
    if not text.strip():
        return Reject(uid, source_uri, STAGE, "empty", f"the {field!r} cell is blank")
    doc = Document(doc_id=uid, source_uri=source_uri, text=text, kind=kind, url=row.get("url"),
                   title=row.get("title"), meta={"bytes": len(body)})
    if row.get("id") is not None:
        doc.meta["input_id"] = row["id"]
    return doc


def _row_payload(field: str, body: bytes | None, row: Mapping[str, str | None]) -> bytes:
    """The row's fields that make the unit, serialized the same way on every run: name, length, bytes."""
    parts = [(field, body)] + [(name, None if row[name] is None else str(row[name]).encode())
                               for name in _PARQUET_OPTIONAL if name in row]
    return b"".join(f"{name}:-1;".encode() if value is None else f"{name}:{len(value)};".encode() + value
                    for name, value in parts)

"""Read stage: find the input files under SOURCE, split them into shards, turn bytes into documents.

An input unit is a file (``.txt``, ``.md``, ``.html``, ``.htm``), one line of a ``.jsonl`` file or one
response record of a ``.warc`` file; each may be gzip-compressed (``.gz``). A unit that cannot be read
becomes a ``Reject`` with a reason code; reading never raises for bad input.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import xxhash
from pydantic import BaseModel, ConfigDict, Field
from warcio.archiveiterator import ArchiveIterator

from flows.decode import DecodeError, decode_bytes
from flows.document import Document, Kind, Reject

STAGE = "read"
_TEXT_SUFFIXES = {".txt": "text", ".md": "text", ".html": "html", ".htm": "html"}
_CONTAINER_SUFFIXES = {".jsonl", ".warc"}
_GLOB_CHARS = set("*?[")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class ReadConfig(BaseModel):
    """Limits for reading input units; each breach becomes a reject with its own reason."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    max_unit_bytes: int = Field(16 * 1024 * 1024, gt=0)
    """Largest unit (file, JSONL line, WARC body) read, after decompression; larger: ``unit_too_large``."""
    max_inflated_bytes: int = Field(2 * 1024**3, gt=0)
    """Most bytes one ``.gz`` file may inflate to (gzip bombs); beyond: ``gzip_too_large``. For ``.warc.gz``
    (one gzip member per record) the limit is per member; a ``.warc`` line longer than ``max_unit_bytes``
    is ``warc_line_too_long`` (see ``_warc_precheck``)."""
    shard_files: int = Field(256, gt=0)
    """Most files in one shard (a shard is the unit of work of a task)."""
    shard_bytes: int = Field(16 * 1024 * 1024, gt=0)
    """Most input bytes (on disk) in one shard. A larger uncompressed JSONL file is cut at line starts into
    shards of about this size; another larger file is a shard of its own, read and processed in chunks of
    about this many characters of text. A worker holds about 3x its shard's bytes; 16 MiB of HTML is ~140
    pages, ~3 s of work per task against ~0.1 s of Prefect overhead per task; 32 MiB halves that overhead
    for ~60 MiB more peak memory (bench/e2e.py)."""


_FS_BYTES = "fsbytes:"


@dataclass(frozen=True, slots=True)
class InputFile:
    """A file to read: its absolute path and its posix path relative to SOURCE.

    ``path`` is valid UTF-8 so that Prefect can send it as JSON: a non-UTF-8 name travels as
    ``fsbytes:<hex of the path's bytes>`` (see ``_portable``), which ``os_path`` turns back.
    """

    path: str
    rel: str
    size: int
    start: int = 0
    """A piece of a large uncompressed JSONL file begins here (a byte offset at a line start); 0 otherwise."""
    stop: int | None = None
    """The piece ends here (exclusive, just after a newline); None: at the end of the file."""
    first_line: int = 1
    """Line number of the piece's first line: its units keep the ids they have when the file is read whole."""
    etag: str | None = None


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
    """List the files SOURCE names: a file, a directory (recursive) or a glob pattern."""
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
    """The path to open for ``item`` (bytes for a non-UTF-8 name)."""
    return bytes.fromhex(item.path[len(_FS_BYTES):]) if item.path.startswith(_FS_BYTES) else item.path


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


def plan_shards(files: list[InputFile], config: ReadConfig,
                options: Mapping[str, Any] | None = None) -> list[list[InputFile]]:
    """Group files into shards of at most ``shard_files`` files and about ``shard_bytes`` bytes.

    An uncompressed JSONL file larger than ``shard_bytes`` is split at line starts into pieces of about
    that size, each a shard: every worker can take part in one big dump. (A compressed file or a WARC
    cannot be entered in the middle: it stays one shard, read in chunks.)
    """
    shards: list[list[InputFile]] = []
    current: list[InputFile] = []
    current_bytes = 0
    for item in (piece for whole in files for piece in _pieces(whole, config.shard_bytes)):
        if current and (len(current) >= config.shard_files or current_bytes + item.size > config.shard_bytes):
            shards.append(current)
            current, current_bytes = [], 0
        current.append(item)
        current_bytes += item.size
    if current:
        shards.append(current)
    return shards


# Bytes read at a time while a large JSONL file is scanned for piece boundaries.
_SCAN_BLOCK = 1 << 22


def _pieces(item: InputFile, limit: int) -> list[InputFile]:
    """``item`` cut at line starts into pieces of at least ``limit`` bytes, or ``[item]`` when it is not
    a large uncompressed JSONL file (or cannot be read now: reading it will say why)."""
    suffix, gzipped = _unit_kind(item.rel)
    if suffix != ".jsonl" or gzipped or item.size <= limit:
        return [item]
    try:
        return _line_aligned_pieces(item, limit)
    except OSError:
        return [item]


def _line_aligned_pieces(item: InputFile, limit: int) -> list[InputFile]:
    pieces: list[InputFile] = []
    start, first_line = 0, 1
    block_start, line_at_block = 0, 1
    with open(os_path(item), "rb") as handle:
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
    return InputFile(item.path, item.rel, size, start, stop, first_line)


# -- reading units ---------------------------------------------------------------------------


def read_shard(files: list[InputFile], config: ReadConfig) -> tuple[list[Document], list[Reject]]:
    """Read every unit of every file in a shard."""
    docs: list[Document] = []
    rejects: list[Reject] = []
    for unit in iter_units(files, config):
        (docs if isinstance(unit, Document) else rejects).append(unit)  # type: ignore[arg-type]
    return docs, rejects


def iter_units(files: list[InputFile], config: ReadConfig,
               options: Mapping[str, Any] | None = None) -> Iterator[Document | Reject]:
    """Every unit of every file in a shard, one at a time (a JSONL or WARC file is read as a stream)."""
    for item in files:
        yield from _read_file(item, config)


def _read_file(item: InputFile, config: ReadConfig) -> Iterator[Document | Reject]:
    suffix, gzipped = _unit_kind(item.rel)
    if suffix not in _TEXT_SUFFIXES and suffix not in _CONTAINER_SUFFIXES:
        yield _fail(item.rel, "unsupported_type", f"suffix {suffix or '(none)'!r} is not read; "
                     "supported: .txt .md .html .htm .jsonl .warc, each optionally .gz")
        return
    # warcio inflates .warc.gz itself, record by record, so offsets are those of the file on disk.
    inflate_here = gzipped and suffix != ".warc"
    try:
        if suffix == ".warc":
            _warc_precheck(os_path(item), gzipped, config)
        with _open(os_path(item), inflate_here, config) as stream:
            if suffix == ".jsonl":
                yield from _read_jsonl(_window(stream, item), item.rel, config, item.first_line)
            elif suffix == ".warc":
                yield from _read_warc(stream, item.rel, config)
            else:
                payload = _read_limited(stream, config.max_unit_bytes)
                yield _text_unit(item.rel, payload, _TEXT_SUFFIXES[suffix], None, None)  # type: ignore[arg-type]
    except UnitError as err:
        yield _fail(item.rel, err.reason, err.detail)
    except OSError as err:
        yield _fail(item.rel, "unreadable", f"cannot read the file: {err.strerror or err}")


class _InflateLimit(io.RawIOBase):
    """A gzip stream that fails once it has inflated more than a limit, and names gzip faults."""

    def __init__(self, path: str | bytes, limit: int) -> None:
        self._gz = gzip.open(path, "rb")  # noqa: SIM115 - closed by close()
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
        super().close()


def _open(path: str | bytes, gzipped: bool, config: ReadConfig) -> IO[bytes]:
    if gzipped:
        return io.BufferedReader(_InflateLimit(path, config.max_inflated_bytes), buffer_size=1 << 16)
    return open(path, "rb")


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


def _read_warc(stream: IO[bytes], rel: str, config: ReadConfig) -> Iterator[Document | Reject]:
    iterator = ArchiveIterator(stream)
    try:
        for record in iterator:
            if record.format != "warc":
                # warcio falls back to the legacy ARC format for anything that is not WARC.
                yield _fail(f"{rel}#{iterator.offset}", "warc_invalid", "not a WARC record (no 'WARC/' header line)")
                return
            if record.rec_type == "response":
                yield _warc_record(iterator, record, rel, config)
    # warcio parses hostile bytes: any exception it raises means a damaged file, never a crashed run.
    except Exception as err:
        offset = iterator.offset
        yield _fail(f"{rel}#{offset}", "warc_truncated",
                    f"the WARC file is damaged after offset {offset}: {type(err).__name__}: {err}; "
                    "the records before it were read")
        return
    size = os.fstat(stream.fileno()).st_size
    if iterator.offset < size:  # a gzip member cut off: warcio stops without an error
        yield _fail(f"{rel}#{iterator.offset}", "warc_truncated",
                    f"the WARC file ends inside a record after offset {iterator.offset} (of {size} bytes)")


def _warc_precheck(path: str | bytes, gzipped: bool, config: ReadConfig) -> None:
    """Refuse a WARC file that would make warcio fill memory, reading it once in bounded memory.

    warcio reads header lines whole: inflated bytes without a newline (a gzip bomb of zeros) would be
    held in memory. A line longer than ``max_unit_bytes`` refuses the file (``warc_line_too_long``),
    so does a gzip member that inflates past ``max_inflated_bytes`` (``gzip_too_large``; WARC files
    hold one member per record). Damage is left to the main pass, which reports where it is.
    """
    line = member = 0
    inflater = zlib.decompressobj(31) if gzipped else None
    pending = b""
    with open(path, "rb") as raw:
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

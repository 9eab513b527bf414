"""WARC inputs: one unit per response record, its body decoded by the charset its headers declare;
a file that would make warcio fill memory, or a damaged one, is a reject."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from typing import IO, Any

from warcio.archiveiterator import ArchiveIterator

from flows.document import Document, Reject
from flows.read.streams import open_raw, read_limited
from flows.read.text import text_unit
from flows.read.units import STAGE, InputFile, ReadConfig, UnitError, fail, unit_id
from flows.storage import StorageError


def read_warc(item: InputFile, gzipped: bool, config: ReadConfig, options: Mapping[str, Any] | None,
              fetched: Future[bytes] | None) -> Iterator[Document | Reject]:
    """Every response record of the WARC file ``item``, once ``_warc_precheck`` lets it through."""
    _warc_precheck(item, gzipped, config, options, fetched)
    # warcio inflates .warc.gz itself, record by record, so offsets are those of the file on disk.
    with open_raw(item, options, fetched) as stream:
        yield from _records(stream, item, config)


def _records(stream: IO[bytes], item: InputFile, config: ReadConfig) -> Iterator[Document | Reject]:
    rel = item.rel
    iterator = ArchiveIterator(stream)
    try:
        for record in iterator:
            if record.format != "warc":
                # warcio falls back to the legacy ARC format for anything that is not WARC.
                yield fail(f"{rel}#{iterator.offset}", "warc_invalid", "not a WARC record (no 'WARC/' header line)")
                return
            if record.rec_type == "response":
                yield _warc_record(iterator, record, rel, config)
    except StorageError:
        raise  # the store failed, not the file
    # warcio parses hostile bytes: any exception it raises means a damaged file, never a crashed run.
    except Exception as err:
        offset = iterator.offset
        yield fail(f"{rel}#{offset}", "warc_truncated",
                    f"the WARC file is damaged after offset {offset}: {type(err).__name__}: {err}; "
                    "the records before it were read")
        return
    size = item.size  # as listed; the same as the file's size unless it changed since
    if iterator.offset < size:  # a gzip member cut off: warcio stops without an error
        yield fail(f"{rel}#{iterator.offset}", "warc_truncated",
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
    with open_raw(item, options, fetched) as raw:
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
        body = read_limited(record.content_stream(), config.max_unit_bytes)
        if getattr(record.raw_stream, "limit", 0) > 0:
            body = UnitError("warc_truncated", "the record ends before its Content-Length: the file is cut off")
    except UnitError as err:
        body = err
    return _warc_unit(record, body, f"{rel}#{iterator.get_record_offset()}")


def _warc_unit(record: Any, body: bytes | UnitError, source_uri: str) -> Document | Reject:
    if isinstance(body, UnitError):
        return fail(source_uri, body.reason, body.detail)
    url = record.rec_headers.get_header("WARC-Target-URI")
    content_type = (record.http_headers.get_header("Content-Type") if record.http_headers else None) or ""
    mime = content_type.split(";")[0].strip().lower()
    if mime and mime not in {"text/html", "application/xhtml+xml", "text/plain"}:
        return Reject(unit_id(source_uri, body), source_uri, STAGE, "unsupported_content_type",
                      f"the response is {mime}, not HTML or text")
    charset = _header_charset(content_type)
    return text_unit(source_uri, body, "text" if mime == "text/plain" else "html", url, charset)


def _header_charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


"""JSONL inputs: one unit per line, an object with a ``text`` (or ``html``) field and optional ``id``, ``url``,
``title``; a large uncompressed file is read in pieces cut at line starts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO, Any

import orjson

from flows.document import Document, Reject
from flows.read.units import STAGE, ReadConfig, UnitError, fail, unit_id

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def read_jsonl(stream: IO[bytes], rel: str, config: ReadConfig, first_line: int = 1) -> Iterator[Document | Reject]:
    """Every line of ``stream`` (a whole file or a piece) as a unit ``rel#L<n>``, numbered from ``first_line``."""
    for number, line in enumerate(_lines(stream, config.max_unit_bytes), start=first_line):
        source_uri = f"{rel}#L{number}"
        if isinstance(line, UnitError):
            yield fail(source_uri, line.reason, line.detail)
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


def _loads(line: bytes) -> tuple[Any, bool]:
    """The line's JSON value, and whether its strings may hold lone surrogates.

    orjson first: it parses a page twice as fast as ``json``, and it refuses lone surrogates (escaped or
    UTF-8-encoded), so what it returns needs no scan for them (the scan alone cost as much as its parse). ``json``
    reads what orjson refuses: lone surrogates, a BOM, UTF-16, ``NaN``. (orjson reads an integer past 64 bits as a
    float: no field a unit keeps is a number.)
    """
    try:
        return orjson.loads(line), False
    except orjson.JSONDecodeError:
        return json.loads(line), _may_hold_surrogates(line)


def _jsonl_unit(source_uri: str, line: bytes) -> Document | Reject:
    uid = unit_id(source_uri, line)
    try:
        record, scrub = _loads(line)
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
    if scrub:
        body, url, title = _scrub(body), url and _scrub(url), title and _scrub(title)
    doc = Document(doc_id=uid, source_uri=source_uri, text=body, kind=kind,  # type: ignore[arg-type]
                   url=url, title=title, meta={"bytes": len(line)})
    if record.get("id") is not None:
        doc.meta["input_id"] = record["id"]
    return doc

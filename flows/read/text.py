"""Plain text and HTML units: a whole file (or a WARC body) decoded into one document."""

from __future__ import annotations

from typing import IO

from flows.document import Document, Kind, Reject
from flows.read.decode import DecodeError, decode_bytes
from flows.read.streams import read_limited
from flows.read.units import STAGE, TEXT_SUFFIXES, InputFile, ReadConfig, unit_id


def read_text(stream: IO[bytes], item: InputFile, suffix: str, config: ReadConfig) -> Document | Reject:
    """The file ``item`` (a ``.txt``, ``.md``, ``.html`` or ``.htm``, inflated) as one unit."""
    payload = read_limited(stream, config.max_unit_bytes)
    return text_unit(item.rel, payload, TEXT_SUFFIXES[suffix], None, None)  # type: ignore[arg-type]


def text_unit(source_uri: str, payload: bytes, kind: Kind, url: str | None,
              charset: str | None) -> Document | Reject:
    """A text or HTML unit of ``payload``, decoded (``charset``: as its headers declare it)."""
    uid = unit_id(source_uri, payload)
    try:
        text = decode_bytes(payload, is_html=kind == "html", declared=charset)
    except DecodeError as err:
        return Reject(uid, source_uri, STAGE, err.reason, err.detail)
    return Document(doc_id=uid, source_uri=source_uri, text=text, kind=kind, url=url, meta={"bytes": len(payload)})

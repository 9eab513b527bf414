"""The read stage's entry: every file of a shard handed to its format's reader, a reject for a type not read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from typing import Any

from flows.document import Document, Reject
from flows.read.jsonl import read_jsonl
from flows.read.parquet import read_parquet
from flows.read.streams import open_stream, window, with_prefetch
from flows.read.text import read_text
from flows.read.units import (
    CONTAINER_SUFFIXES,
    PARQUET,
    TEXT_SUFFIXES,
    InputFile,
    ReadConfig,
    UnitError,
    fail,
    unit_kind,
)
from flows.read.warc import read_warc


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
    for item, fetched in with_prefetch(files, options):
        yield from _read_file(item, config, options, fetched)


def _read_file(item: InputFile, config: ReadConfig, options: Mapping[str, Any] | None,
               fetched: Future[bytes] | None = None) -> Iterator[Document | Reject]:
    suffix, gzipped = unit_kind(item.rel)
    if not (suffix in TEXT_SUFFIXES or suffix in CONTAINER_SUFFIXES or (suffix == PARQUET and not gzipped)):
        yield fail(item.rel, "unsupported_type", f"suffix {suffix or '(none)'!r}{' .gz' if gzipped else ''} "
                   "is not read; supported: .txt .md .html .htm .jsonl .warc, each optionally .gz, and "
                   ".parquet (compressed inside, never .gz)")
        return
    try:
        if suffix == PARQUET:
            yield from read_parquet(item, config, options, fetched)
        elif suffix == ".warc":
            yield from read_warc(item, gzipped, config, options, fetched)
        else:
            with open_stream(item, gzipped, config, options, fetched) as stream:
                if suffix == ".jsonl":
                    yield from read_jsonl(window(stream, item), item.rel, config, item.first_line)
                else:
                    yield read_text(stream, item, suffix, config)
    except UnitError as err:
        yield fail(item.rel, err.reason, err.detail)
    except OSError as err:  # a local read error, or an object deleted since it was listed
        yield fail(item.rel, "unreadable", f"cannot read the file: {err.strerror or err}")

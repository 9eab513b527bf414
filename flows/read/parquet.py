"""Parquet inputs: one unit per row, read a row group at a time from a ``text`` (or ``html``) string column."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flows.document import Document, Kind, Reject
from flows.read.streams import open_raw
from flows.read.units import STAGE, InputFile, ReadConfig, UnitError, fail, unit_id

_PARQUET_OPTIONAL = ("id", "url", "title")
# Rows decoded at a time: Arrow holds one row group's column chunks (as stored) and this many rows decoded.
_PARQUET_BATCH_ROWS = 128


def read_parquet(item: InputFile, config: ReadConfig, options: Mapping[str, Any] | None,
                  fetched: Future[bytes] | None) -> Iterator[Document | Reject]:
    """One unit per row, a row group at a time, from a ``text`` (or else ``html``) string column with
    optional ``id``, ``url`` and ``title`` string columns; ``source_uri`` is ``rel#R<row>``, rows numbered
    from 1 over the whole file (as JSONL lines are)."""
    with open_raw(item, options, fetched) as handle:
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
                yield fail(f"{item.rel}#R{row}", "parquet_invalid",
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
            yield fail(source_uri, "unit_too_large", f"the {field!r} cell is larger than "
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

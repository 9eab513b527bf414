"""Shards of about the size asked for: rows are written a slice at a time and a shard closes when the
next rows would take it past the target.

Each sink reports its compressed size as it grows (a Parquet row group is on disk once written; a
JSONL stream is flushed through its compressor after each slice), and the writer keeps the ratio of
compressed to uncompressed bytes it has seen, so it knows how many of the next rows still fit. The
first slices of an export are small (the ratio is not known yet); later ones are an eighth of a shard,
so the last slice of a shard is sized from a ratio measured on the rest of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flows.export.query import HIDDEN

LINE = f"{HIDDEN}line"
_SLICES_PER_SHARD = 8
_MAX_SLICE_BYTES = 128_000_000  # uncompressed: a Parquet row group, or what a JSONL slice holds in memory
_FILL = 0.99  # aim a little under the target: the last slice's ratio is an estimate
_CODECS = {"jsonl.gz": "gzip", "jsonl.zst": "zstd"}
_UNSTATED_STRINGS = {"text", "title", "url", "source_uri"}  # no min/max: 4 KB each per row group, no use


class Sink(Protocol):
    rows: int

    def write(self, table: pa.Table) -> None: ...
    def size(self) -> int: ...
    def close(self) -> None: ...


class ParquetSink:
    """One Parquet file, zstd; each write is one row group."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.rows = 0
        self._raw = pa.OSFile(str(path), "wb")
        stated = [f.name for f in schema if f.name not in _UNSTATED_STRINGS]
        self._writer = pq.ParquetWriter(self._raw, schema, compression="zstd", write_statistics=stated)

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.rows += table.num_rows

    def size(self) -> int:
        return int(self._raw.tell())

    def close(self) -> None:
        self._writer.close()
        self._raw.close()


class JsonlSink:
    """One JSON Lines file through gzip or zstd; flushed after each write so its size is known."""

    def __init__(self, path: Path, codec: str) -> None:
        self.rows = 0
        self._raw = pa.OSFile(str(path), "wb")
        self._stream = pa.CompressedOutputStream(self._raw, codec)

    def write(self, table: pa.Table) -> None:
        self._stream.write(b"".join(table.column(LINE).to_pylist()))
        self._stream.flush()
        self.rows += table.num_rows

    def size(self) -> int:
        return int(self._raw.tell())

    def close(self) -> None:
        self._stream.close()
        if not self._raw.closed:
            self._raw.close()


@dataclass
class Shard:
    name: str
    rows: int
    bytes: int
    sha256: str


def row_weights(table: pa.Table) -> np.ndarray:
    """Uncompressed bytes per row: string and binary lengths, 8 for any other value."""
    weights = np.zeros(table.num_rows, dtype=np.int64)
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_binary(column.type) or pa.types.is_large_string(
                column.type):
            lengths = pc.fill_null(pc.binary_length(column), 0)
            weights += np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64)
        else:
            weights += 8
    return weights


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


Publish = Callable[[Path, str], None]  # a closed shard file and its final name: put it in place


class ShardWriter:
    """Cuts a stream of tables (hidden columns dropped) into shards of about ``target`` bytes."""

    def __init__(self, fmt: str, target: int, schema: pa.Schema, workdir: Path, publish: Publish) -> None:
        self.fmt, self.target, self.schema, self.workdir, self.publish = fmt, target, schema, workdir, publish
        self.shards: list[Shard] = []
        self._sink: Sink | None = None
        self._written = 0  # uncompressed bytes in the open shard
        self._ratio = 1.0  # compressed / uncompressed, measured; 1.0 until then (small first slices)
        # Bytes a shard gains when it closes, per slice written (Parquet: row groups' metadata), as measured
        # on the last shard; before one closed, a guess of 100 bytes per column chunk.
        self._footer_per_slice = 100.0 * len(schema) if fmt == "parquet" else 0.0
        self._slices = 0
        self._pending: list[pa.Table] = []

    def _open(self) -> Sink:
        path = self._partial()
        self._written = self._slices = 0
        if self.fmt == "parquet":
            return ParquetSink(path, self.schema)
        return JsonlSink(path, _CODECS[self.fmt])

    def _partial(self) -> Path:
        return self.workdir / f".{self._name()}.partial"

    def _name(self) -> str:
        return f"shard-{len(self.shards):05d}.{self.fmt}"

    def add(self, table: pa.Table) -> None:
        """Take rows; write every slice that is complete. Slices depend on the rows alone, not on how
        they arrive, so the same rows give the same bytes however they were batched."""
        if table.num_rows:
            self._pending.append(table)
            self._drain(final=False)

    def _allowed(self, sink: Sink) -> float:
        """Uncompressed bytes the next slice may hold."""
        room = self.target * _FILL - sink.size() - self._footer_per_slice * (self._slices + 1)
        return min(room / self._ratio, self.target / self._ratio / _SLICES_PER_SHARD, _MAX_SLICE_BYTES)

    def _drain(self, final: bool) -> None:
        while self._pending:
            pending = pa.concat_tables(self._pending)
            cumulative = np.cumsum(row_weights(pending))
            sink = self._sink = self._sink or self._open()
            count = int(np.searchsorted(cumulative, self._allowed(sink), side="right"))
            if count == pending.num_rows and not final:
                self._pending = [pending]
                return  # the slice could take more rows than have come
            if count == 0 and sink.rows:
                self._close()
                continue
            count = max(count, 1)  # a row larger than the room left goes alone into an empty shard
            sink.write(pending.slice(0, count).combine_chunks())
            self._slices += 1
            self._written += int(cumulative[count - 1])
            self._ratio = max(sink.size(), 1) / max(self._written, 1)
            self._pending = [pending.slice(count)] if count < pending.num_rows else []

    def _close(self) -> None:
        assert self._sink is not None
        before, rows = self._sink.size(), self._sink.rows
        self._sink.close()
        self._sink = None
        path = self._partial()
        size = path.stat().st_size
        self._footer_per_slice = (size - before) / max(self._slices, 1)
        shard = Shard(self._name(), rows, size, sha256_of(path))
        self.publish(path, shard.name)
        self.shards.append(shard)

    def finish(self) -> list[Shard]:
        """Write the rows left, close the last shard; an export without rows still gets one (empty)
        shard, so readers' globs match."""
        self._drain(final=True)
        if self._sink is None and not self.shards:
            self._sink = self._open()
        if self._sink is not None:
            self._close()
        return self.shards

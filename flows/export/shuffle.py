"""A shuffle that never holds the export in memory: an external bucket sort on a seeded hash.

Each row's key is ``xxh3_64(doc_id, seed)``. The rows are spread into 256 temporary Arrow files by the
key's top 8 bits, as they stream from the lake; then each bucket, in key order, is read back, sorted by
key and handed on. A bucket larger than ``bucket_bytes`` is split again by the next 8 bits first. So
the order is exactly "sorted by key" (ties keep the lake's order), whatever the buckets' sizes: it
depends only on the lake, the predicate and the seed. Memory: about two buckets; disk: one copy of the
export (zstd-compressed Arrow IPC) in the scratch folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from flows.export.query import HIDDEN
from flows.export.shards import row_weights

KEY = f"{HIDDEN}key"
DOC = f"{HIDDEN}doc"
_BITS = 8
_FANOUT = 1 << _BITS
_IPC = pa.ipc.IpcWriteOptions(compression="zstd")


def keyed(table: pa.Table, seed: int) -> pa.Table:
    """``table`` with its shuffle key: xxh3_64 of each doc_id's UTF-8 bytes, seeded."""
    ids = table.column(DOC).to_pylist()
    keys = np.fromiter((xxhash.xxh3_64_intdigest(doc.encode(), seed) for doc in ids), dtype=np.uint64,
                       count=len(ids))
    return table.append_column(KEY, pa.array(keys, pa.uint64()))


class _Buckets:
    """256 temporary Arrow files, opened when first written; the uncompressed bytes each one holds."""

    def __init__(self, folder: Path, shift: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.shift = folder, shift
        self.weights = np.zeros(_FANOUT, dtype=np.int64)
        self._writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}

    def path(self, bucket: int) -> Path:
        return self.folder / f"{bucket:03d}.arrow"

    def add(self, table: pa.Table) -> None:
        keys = table.column(KEY).to_numpy()
        buckets = ((keys >> np.uint64(self.shift)) & np.uint64(_FANOUT - 1)).astype(np.int64)
        order = np.argsort(buckets, kind="stable")
        counts = np.bincount(buckets, minlength=_FANOUT)
        self.weights += np.bincount(buckets, weights=row_weights(table), minlength=_FANOUT).astype(np.int64)
        ordered = table.take(pa.array(order))
        start = 0
        for bucket in np.flatnonzero(counts):
            piece = ordered.slice(start, int(counts[bucket]))
            start += int(counts[bucket])
            self._writer(int(bucket), table.schema).write_table(piece)

    def _writer(self, bucket: int, schema: pa.Schema) -> pa.ipc.RecordBatchStreamWriter:
        if bucket not in self._writers:
            self._writers[bucket] = pa.ipc.new_stream(str(self.path(bucket)), schema, options=_IPC)
        return self._writers[bucket]

    def close(self) -> list[int]:
        """Close every file; the buckets that hold rows, in key order."""
        for writer in self._writers.values():
            writer.close()
        return sorted(self._writers)


def _split(tables: Iterable[pa.Table], folder: Path, shift: int) -> tuple[_Buckets, list[int]]:
    buckets = _Buckets(folder, shift)
    for table in tables:
        if table.num_rows:
            buckets.add(table)
    return buckets, buckets.close()


def _read(path: Path) -> Iterator[pa.Table]:
    with pa.ipc.open_stream(pa.memory_map(str(path))) as reader:
        for batch in reader:
            yield pa.Table.from_batches([batch])


def _drain(tables: Iterable[pa.Table], folder: Path, shift: int, bucket_bytes: int) -> Iterator[pa.Table]:
    """Rows of ``tables`` sorted by key, where every key agrees on the bits above ``shift + 8``."""
    buckets, used = _split(tables, folder, shift)
    for bucket in used:
        path = buckets.path(bucket)
        if buckets.weights[bucket] > bucket_bytes and shift > 0:
            yield from _drain(_read(path), folder / f"{bucket:03d}", max(shift - _BITS, 0), bucket_bytes)
        else:
            table = pa.concat_tables(_read(path))
            yield table.take(pc.sort_indices(table, sort_keys=[(KEY, "ascending")]))
        path.unlink()


def shuffled(tables: Iterable[pa.Table], seed: int, scratch: Path, bucket_bytes: int) -> Iterator[pa.Table]:
    """``tables`` (with a ``__doc`` column) in the seeded order, a sorted bucket at a time."""
    return _drain((keyed(t, seed) for t in tables), scratch / "shuffle", 64 - _BITS, bucket_bytes)

"""The files a run's partitioned dedup stages hand each other, in its staging folder (``staging/dedup/``).

Per staged shard, written by ``flows.dedup.stages.prepare_shard``:

* ``shard-N.nodes.npy``: the shard's new distinct fingerprints (nodes), by digest: digest, set size, first row;
* ``shard-N.sigs.npy``: their signatures, aligned;
* ``shard-N.bands.npy``: every band key of every node, sorted by partition (``partition_of``), then key;
* ``shard-N.copies.npy``: every new row's digest, sorted by the digest's partition, for exact copies;
* ``shard-N.entries.npy``, ``shard-N.ids.npy``: every new row as an index entry (doc-id key, content hash, set
  size, row, node) and its doc_id, sorted by the doc-id key's partition (the entry's home in the index), then key;
* ``shard-N.refs.npy``: every new row's node, row and doc-id key, sorted by node (a node's band rows in the index
  name the doc-id keys of its rows);
* ``shard-N.offsets.npy``: ``(3, P + 1)``: where each partition's rows start in ``bands``, ``copies`` and
  ``entries``;
* ``shard-N.lake.parquet``: rows the lake already decided (and rows with a lake match in segments the partition
  tasks do not search: older formats, an earlier banding).

Per partition of the band keys, written by ``flows.dedup.stages.link_partition``'s task:

* ``links-pNNNN.npz``: its verified links (``PartitionLinks``);
* ``lake-pNNNN.npy``: lake candidates: a run node and the doc-id key of a lake entry sharing a band key with it,
  sorted by the entry's home partition (the flow holds how many go to each);

and per index partition, by ``flows.dedup.matching``'s tasks:

* ``matches-pNNNN.parquet`` (``match_partition``): the best near and containing lake match of each node that has
  one among the entries homed there;
* ``wanted-pNNNN.npy`` (``save_wanted``): the lake clusters those matches name (the doc_ids of their kept
  documents), sorted by each one's home partition (the flow holds how many go to each);
* ``kept-pNNNN.parquet`` (``kept_partition``): the signature, set size and content hash of the kept documents
  homed there that the match tasks named, for the decide task.

A partition task reads only its slice of each shard's ``bands`` and ``copies`` and the signatures of the nodes
its candidate pairs name: from the local file when this machine has it (a read per run of adjacent rows, or one
for dense rows), else by ranged reads from the lake's store, where ``persist`` mirrored it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from flows.lake.commit import persist
from flows.lake.layout import RunPaths

NODE_DTYPE = np.dtype([("hi", "<u8"), ("lo", "<u8"), ("size", "<u4"), ("row", "<u4")])
BAND_DTYPE = np.dtype([("key", "<u8"), ("hi", "<u8"), ("lo", "<u8"), ("node", "<u4")])
COPY_DTYPE = np.dtype([("hi", "<u8"), ("lo", "<u8"), ("row", "<u4")])
ENTRY_DTYPE = np.dtype([("key", "<u8"), ("hash_hi", "<u8"), ("hash_lo", "<u8"), ("size", "<u4"), ("row", "<u4"),
                        ("node", "<u4")])
REF_DTYPE = np.dtype([("node", "<u4"), ("row", "<u4"), ("key", "<u8")])
CANDIDATE_DTYPE = np.dtype([("ref", "<u8"), ("hi", "<u8"), ("lo", "<u8"), ("shard", "<u4"), ("node", "<u4")])
_RANGE_BLOCK = 1 << 20
DEDUP_DIR = "dedup"


def relative(number: int, part: str) -> str:
    """Where a shard's file ``part`` (nodes, sigs, bands, copies, offsets, lake.parquet) is, relative to staging."""
    return f"{DEDUP_DIR}/shard-{number:06d}.{part}"


def local(paths: RunPaths, number: int, part: str) -> Path:
    return paths.staging / relative(number, part)


def save(paths: RunPaths, number: int, arrays: dict[str, np.ndarray]) -> None:
    """Write a shard's arrays (``offsets`` last: a shard's files are whole once it is there) and mirror them."""
    written = []
    for part, array in sorted(arrays.items(), key=lambda item: item[0] == "offsets"):
        written.append(_write(local(paths, number, f"{part}.npy"), array))
    persist(paths, *written)


def save_array(paths: RunPaths, relative_path: str, array: np.ndarray) -> None:
    """Stage one array at ``relative_path`` and mirror it."""
    persist(paths, _write(paths.staging / relative_path, array))


def save_arrays(paths: RunPaths, relative_path: str, arrays: dict[str, np.ndarray]) -> None:
    """Stage several arrays as one ``.npz`` file at ``relative_path`` and mirror it."""
    persist(paths, _write(paths.staging / relative_path, arrays))


def _write(path: Path, array: np.ndarray | dict[str, np.ndarray]) -> Path:
    """``array`` saved at ``path`` (a dict of them: as ``.npz``), whole once there (written aside, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as f:
        if isinstance(array, dict):
            cast(Any, np.savez)(f, **array)  # (numpy's stub reads the names as its own keywords)
        else:
            np.save(f, array, allow_pickle=False)
    partial.replace(path)
    return path


def _header(stream: IO[bytes]) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """Shape, dtype and data offset of the .npy file ``stream`` is at the start of."""
    version = np.lib.format.read_magic(stream)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _fortran, dtype = read(stream)
    return shape, dtype, stream.tell()


# Layouts of local staged arrays, by path, modification time and size: a partition task reads a slice of every
# shard's arrays, so each array is read by every partition's tasks; opening it with ``np.load`` each time (a header
# parse and a memory map, ~60 us) cost more than reading the slice (~15 us): the dedup of a 20,000-document run in
# 210 shards took 26.6 s on 2 threads, 10.2 s now (``bench/dedup_run.py``, 16 partitions).
_LAYOUTS = 1 << 16


@lru_cache(maxsize=_LAYOUTS)
def _local_layout(path: str, modified_ns: int, size: int) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    with open(path, "rb") as stream:
        return _header(stream)


def _layout(paths: RunPaths, relative_path: str) -> tuple[Path, tuple[int, ...], np.dtype[Any], int] | None:
    """The local file of the staged array at ``relative_path``, its shape, dtype and data offset; None when this
    machine lacks the file of a bucket lake's run (a local lake's missing file raises ``FileNotFoundError``)."""
    path = paths.staging / relative_path
    try:
        stat = path.stat()
    except FileNotFoundError:
        if paths.lake.remote:
            return None
        raise
    return (path, *_local_layout(str(path), stat.st_mtime_ns, stat.st_size))


def length(paths: RunPaths, number: int, part: str) -> int:
    """The number of rows of a shard's array ``part``."""
    relative_path = relative(number, f"{part}.npy")
    if (layout := _layout(paths, relative_path)) is not None:
        return int(layout[1][0])
    with paths.lake.open_ranged(f"{paths.staging_key}/{relative_path}", 4096) as stream:
        return int(_header(stream)[0][0])


def rows(paths: RunPaths, number: int, part: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a shard's array ``part``: from the local file, else a ranged read of the store's copy."""
    return file_rows(paths, relative(number, f"{part}.npy"), start, stop)


def picked_rows(paths: RunPaths, number: int, part: str, wanted: np.ndarray) -> np.ndarray:
    """The rows ``wanted`` (sorted, distinct) of a shard's array ``part``, reading only those (runs of adjacent
    rows in one read)."""
    return picked_file_rows(paths, relative(number, f"{part}.npy"), wanted)


def file_rows(paths: RunPaths, relative_path: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of the staged array at ``relative_path`` (a ranged read when this machine lacks it)."""
    return _read_rows(paths, relative_path, [(start, stop - start)] if stop > start else [])


def picked_file_rows(paths: RunPaths, relative_path: str, wanted: np.ndarray) -> np.ndarray:
    """The rows ``wanted`` (sorted, distinct) of the staged array at ``relative_path``."""
    wanted = np.asarray(wanted, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(wanted) != 1) + 1
    runs = [(int(run[0]), len(run)) for run in np.split(wanted, breaks) if len(run)]
    return _read_rows(paths, relative_path, runs, wanted)


# A local file's wanted rows are read in one piece, from the first to the last, unless that piece is this many
# times their size: a read per run of adjacent rows costs a system call and a Python loop each.
_SPAN_READ_MAX = 4


def _read_rows(paths: RunPaths, relative_path: str, runs: list[tuple[int, int]],
               wanted: np.ndarray | None = None) -> np.ndarray:
    """The rows of ``runs`` (first row, count; ascending; ``wanted``: the same rows one by one) of the staged array
    at ``relative_path``, a read per run: of the local file, or (when this machine lacks it) of the store's copy."""
    if (layout := _layout(paths, relative_path)) is not None:
        path, shape, dtype, offset = layout
        descriptor = os.open(path, os.O_RDONLY)
        try:
            read = partial(_pread, descriptor)
            if wanted is not None and len(runs) > 1:
                first, span = runs[0][0], runs[-1][0] + runs[-1][1] - runs[0][0]
                if span <= _SPAN_READ_MAX * len(wanted):
                    piece = _gather_runs(read, shape, dtype, offset, [(first, span)])
                    picked: np.ndarray = piece[wanted - first]
                    return picked
            return _gather_runs(read, shape, dtype, offset, runs)
        finally:
            os.close(descriptor)
    with paths.lake.open_ranged(f"{paths.staging_key}/{relative_path}", _RANGE_BLOCK) as stream:
        shape, dtype, offset = _header(stream)
        return _gather_runs(partial(_ranged_read, stream), shape, dtype, offset, runs)


def _gather_runs(read: Callable[[int, int], bytes], shape: tuple[int, ...], dtype: np.dtype[Any], offset: int,
                 runs: list[tuple[int, int]]) -> np.ndarray:
    """The rows of ``runs`` of an array laid out at ``offset`` with ``shape`` and ``dtype``; ``read(position,
    size)`` reads the file's bytes."""
    if runs and (runs[0][0] < 0 or runs[-1][0] + runs[-1][1] > shape[0]):
        raise IndexError(f"rows {runs[0][0]} to {runs[-1][0] + runs[-1][1]} of a staged array of {shape[0]} rows")
    width = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    data = b"".join(read(offset + first * width, count * width) for first, count in runs)
    return np.frombuffer(data, dtype=dtype).reshape(sum(count for _, count in runs), *shape[1:])


def _pread(descriptor: int, position: int, size: int) -> bytes:
    data = os.pread(descriptor, size, position)
    while len(data) < size:  # a regular file gives all at once; a short read is only ever the file's end
        more = os.pread(descriptor, size - len(data), position + len(data))
        if not more:
            raise EOFError(f"a staged array ends {size - len(data)} bytes early")
        data += more
    return data


def _ranged_read(stream: IO[bytes], position: int, size: int) -> bytes:
    stream.seek(position)
    return stream.read(size)


def offsets(paths: RunPaths, number: int) -> np.ndarray:
    """``(3, P + 1)``: where each partition's rows start in the shard's ``bands``, ``copies`` and ``entries``."""
    return rows(paths, number, "offsets", 0, 3)

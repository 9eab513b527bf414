"""The lake on disk: layout, Parquet schemas, staging, atomic commit, run manifests, the lock.

Layout (``LAKE`` is the lake root)::

    LAKE/documents/ingest_date=YYYY-MM-DD/run-<run_id>.parquet   every accepted document
    LAKE/rejects/ingest_date=YYYY-MM-DD/run-<run_id>.parquet     every unit that did not become one
    LAKE/_runs/<run_id>.json                                     one manifest per committed run
    LAKE/_index/                                                 the near-duplicate index (flows.dedup_index)
    LAKE/_staging/<run_id>/                                      a run in progress (readers never look here)
    LAKE/_lock                                                   held by the run writing the lake

A run writes everything under its staging folder, then commits: it writes a ``COMMIT`` list of
renames, performs them (one file per table, one folder for the index segment), writes the
manifest and removes the staging folder. A run that dies mid-commit is rolled forward by the
next run, so a reader sees all of a run or none of it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import xxhash

from flows.document import Document, Reject

# Arrow's default allocator (mimalloc) keeps the pages of freed shards: RSS grew with the run
# (+65 MB writing 20,000 documents, 1.65 GB peak at 100,000). The C allocator hands them back.
pa.set_memory_pool(pa.system_memory_pool())

DOCUMENTS = "documents"
REJECTS = "rejects"
RUNS = "_runs"
INDEX = "_index"
STAGING = "_staging"
LOCK = "_lock"
COMMIT = "COMMIT"
PARTITION_KEY = "ingest_date"
FAULT_ENV = "SIFTLAKE_FAULT"
"""Crash-test hook: ``SIFTLAKE_FAULT=<point>`` makes the process die at that point (see ``fault_point``)."""

REJECTS_SCHEMA = pa.schema([
    ("unit_id", pa.string()),
    ("source_uri", pa.string()),
    ("stage", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("run_id", pa.string()),
])


def documents_schema(signal_names: Sequence[str]) -> pa.Schema:
    """The ``documents`` table: contract columns, dedup detail, then one float column per signal."""
    fields = [
        ("doc_id", pa.string()),
        ("source_uri", pa.string()),
        ("url", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("lang", pa.string()),
        ("content_hash", pa.string()),
        ("dup_cluster", pa.string()),
        ("is_duplicate", pa.bool_()),
        ("dup_similarity", pa.float64()),
        ("quality_score", pa.float64()),
        *((name, pa.float64()) for name in signal_names),
        ("input_kind", pa.string()),
        ("n_chars", pa.int64()),
        ("run_id", pa.string()),
    ]
    return pa.schema(fields)


def staged_schema(signal_names: Sequence[str]) -> pa.Schema:
    """A staged shard: the documents columns known before dedup, plus the MinHash signature."""
    final = documents_schema(signal_names)
    dedup_columns = {"dup_cluster", "is_duplicate", "dup_similarity", "run_id"}
    return pa.schema([f for f in final if f.name not in dedup_columns] + [pa.field("signature", pa.binary())])


def staged_table(docs: Sequence[Document], signatures: np.ndarray, signal_names: Sequence[str]) -> pa.Table:
    """Columns of a processed shard, ready to stage; ``signatures`` rows align with ``docs``."""
    columns: dict[str, list[Any]] = {
        "doc_id": [d.doc_id for d in docs],
        "source_uri": [d.source_uri for d in docs],
        "url": [d.url for d in docs],
        "title": [d.title for d in docs],
        "text": [d.text for d in docs],
        "lang": [d.lang for d in docs],
        "content_hash": [d.content_hash for d in docs],
        "quality_score": [d.quality_score for d in docs],
        **{name: [d.signals.get(name) for d in docs] for name in signal_names},
        "input_kind": [d.kind for d in docs],
        "n_chars": [len(d.text) for d in docs],
        "signature": [row.tobytes() for row in signatures],
    }
    return pa.table(columns, schema=staged_schema(signal_names))


def rejects_table(rejects: Sequence[Reject], run_id: str) -> pa.Table:
    return pa.table({
        "unit_id": [r.unit_id for r in rejects],
        "source_uri": [r.source_uri for r in rejects],
        "stage": [r.stage for r in rejects],
        "reason": [r.reason for r in rejects],
        "detail": [r.detail for r in rejects],
        "run_id": [run_id] * len(rejects),
    }, schema=REJECTS_SCHEMA)


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file under a temporary name, then rename it: no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


# -- staging and commit ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunPaths:
    """Where one run stages its work, and where its files land on commit."""

    lake: Path
    run_id: str
    ingest_date: str

    @property
    def staging(self) -> Path:
        return self.lake / STAGING / self.run_id

    @property
    def shards(self) -> Path:
        return self.staging / "shards"

    def shard_file(self, number: int) -> Path:
        return self.shards / f"shard-{number:06d}.parquet"

    def shard_rejects_file(self, number: int) -> Path:
        return self.shards / f"shard-{number:06d}.rejects.parquet"

    def shard_summary_file(self, number: int) -> Path:
        return self.shards / f"shard-{number:06d}.json"

    def table_file(self, table: str) -> str:
        """Path of the run's file in ``table``, relative to the lake (and to the staging folder)."""
        return f"{table}/{PARTITION_KEY}={self.ingest_date}/run-{self.run_id}.parquet"

    @property
    def manifest(self) -> Path:
        return self.staging / "manifest.json"


def fault_point(name: str) -> None:
    """Die here, as ``kill -9`` would, when ``SIFTLAKE_FAULT`` names this point; a no-op otherwise.

    Points: ``write:after_documents`` (the documents file is assembled in staging, the rejects file
    not yet), ``commit:before_marker`` (the run's files are written in staging, no COMMIT yet) and
    ``commit:after_first_move`` (COMMIT written, one of its renames done). Used by tests/test_crash.py.
    """
    if os.environ.get(FAULT_ENV) == name:
        os._exit(137)


def commit(paths: RunPaths, moves: Sequence[str]) -> None:
    """Make a staged run visible: record the renames, perform them, publish the manifest."""
    fault_point("commit:before_marker")
    plan = {"moves": list(moves), "manifest": f"{RUNS}/{paths.run_id}.json"}
    marker = paths.staging / COMMIT
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(plan))
    os.replace(tmp, marker)
    _roll_forward(paths.lake, paths.staging)


def _roll_forward(lake: Path, staging: Path) -> None:
    plan = json.loads((staging / COMMIT).read_text())
    for relative in plan["moves"]:
        source, target = staging / relative, lake / relative
        if source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            fault_point("commit:after_first_move")
    manifest_target = lake / plan["manifest"]
    manifest_target.parent.mkdir(parents=True, exist_ok=True)
    if (staging / "manifest.json").exists():
        os.replace(staging / "manifest.json", manifest_target)
    shutil.rmtree(staging, ignore_errors=True)


def recover(lake: Path) -> list[str]:
    """Finish the commits that a crash interrupted; return the ids of the runs rolled forward."""
    finished = []
    for staging in sorted((lake / STAGING).glob("*")):
        if (staging / COMMIT).exists():
            _roll_forward(lake, staging)
            finished.append(staging.name)
    return finished


def unfinished_runs(lake: Path) -> list[Path]:
    """Staging folders of runs that stopped before their commit (resumable)."""
    root = lake / STAGING
    return sorted(p for p in root.glob("*") if p.is_dir() and not (p / COMMIT).exists()) if root.exists() else []


# -- what the lake already holds -------------------------------------------------------------


def _id_key(unit: str) -> int:
    """64-bit key of an id: ample to tell ids apart, 8 bytes a row in memory."""
    return xxhash.xxh3_64_intdigest(unit.encode())


def _id_keys(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.array([_id_key(unit) for unit in ids.to_pylist() if unit], dtype=np.uint64)


def known_unit_ids(lake: Path) -> np.ndarray:
    """Sorted 64-bit keys of every unit already in documents or rejects."""
    keys = [np.empty(0, dtype=np.uint64)]
    for table, column in ((DOCUMENTS, "doc_id"), (REJECTS, "unit_id")):
        for batch in _scan(lake / table, [column]):
            keys.append(_id_keys(batch.column(0)))
    return np.unique(np.concatenate(keys))


def _scan(folder: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    if not folder.exists():
        return
    dataset = ds.dataset(folder, format="parquet", partitioning="hive", exclude_invalid_files=False)
    yield from dataset.to_batches(columns=columns)


def is_known(keys: np.ndarray, unit_id: str) -> bool:
    if not unit_id or keys.size == 0:
        return False
    key = np.uint64(_id_key(unit_id))
    position = int(np.searchsorted(keys, key))
    return position < keys.size and keys[position] == key


def read_manifests(lake: Path) -> list[dict[str, Any]]:
    runs = lake / RUNS
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))] if runs.exists() else []


# -- one writer at a time --------------------------------------------------------------------


class LakeBusyError(RuntimeError):
    """Another run holds the lake."""


@contextlib.contextmanager
def lake_lock(lake: Path, wait_s: float) -> Iterator[None]:
    """Hold the lake's lock for a run; wait up to ``wait_s`` seconds for another run to finish."""
    lake.mkdir(parents=True, exist_ok=True)
    with open(lake / LOCK, "a+") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another run"
                    raise LakeBusyError(
                        f"the lake {lake} is being written by {holder}; wait for it to finish and run again, "
                        "or set lock_wait_s to wait for it"
                    ) from err
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)

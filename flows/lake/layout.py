"""The lake's layout: its folders and tables, their Parquet schemas, and where a run stages its files.

Layout (``LAKE`` is the lake root, a local folder or a prefix on an object store)::

    LAKE/documents/ingest_date=YYYY-MM-DD/run-<run_id>.parquet   every accepted document
    LAKE/rejects/ingest_date=YYYY-MM-DD/run-<run_id>.parquet     every unit that did not become one
    LAKE/_runs/<run_id>.json                                     one manifest per committed run
    LAKE/_index/                                                 the near-duplicate index (flows.dedup.index)
    LAKE/_inputs/run-<run_id>.parquet                            input objects a run committed (path, size, ETag)
    LAKE/_takedowns/                                             what ``siftlake forget`` removed and keeps blocked
    LAKE/_units/                                                 keys of the unit ids the lake holds (flows.lake.units)
    LAKE/_staging/<run_id>/                                      a run in progress (readers never look here)
    LAKE/_lock                                                   held by the run writing the lake

Every access goes through a ``flows.storage.Store``; how a staged run becomes visible is ``flows.lake.commit``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flows.document import Document, Reject
from flows.storage import Store

DOCUMENTS = "documents"
REJECTS = "rejects"
RUNS = "_runs"
REPORTS = "_reports"  # LAKE/_reports/<run_id>.html: each run's HTML report (flows.report), outside the dataset
INDEX = "_index"
SEGMENTS = "segments"  # LAKE/_index/segments/<name>/: index segments of formats 1 and 2 (format 3: pNNNN/)
STAGING = "_staging"
LOCK = "_lock"
COMMIT = "COMMIT"
PARTITION_KEY = "ingest_date"
INPUTS = "_inputs"  # LAKE/_inputs/: the inputs ledger (flows.lake.contents)
UNITS = "_units"  # LAKE/_units/: the known-units store, looked up to skip units already in the lake (flows.lake.units)
TAKEDOWNS = "_takedowns"  # LAKE/_takedowns/: block lists, blocked fingerprints and log of takedowns (flows.forget)
FORGET_PREFIX = "forget-"  # LAKE/_staging/forget-<id>/: a takedown's staging, discarded unless committed
# A segment of the index is complete once its meta.json is there (flows.dedup.index).
SEGMENT_META = "meta.json"

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
        ("dup_kind", pa.string()),
        ("dup_containment", pa.float64()),
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
    dedup_columns = {"dup_cluster", "is_duplicate", "dup_similarity", "dup_kind", "dup_containment", "run_id"}
    return pa.schema([f for f in final if f.name not in dedup_columns]
                     + [pa.field("signature", pa.binary()), pa.field("n_shingles", pa.uint32())])


def staged_table(docs: Sequence[Document], signatures: np.ndarray, n_shingles: np.ndarray,
                 signal_names: Sequence[str]) -> pa.Table:
    """Columns of a processed shard, ready to stage; ``signatures`` and ``n_shingles`` (distinct
    shingles, for containment dedup) rows align with ``docs``."""
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
        "n_shingles": np.asarray(n_shingles, dtype=np.uint32).tolist(),
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


def run_of_file(key: str) -> str:
    """The run id of a table file ``.../run-<run_id>.parquet`` (``RunPaths.table_file``)."""
    return key.rsplit("/", 1)[-1].removeprefix("run-").removesuffix(".parquet")


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file under a temporary name, then rename it: no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def use_system_memory_pool() -> None:
    """Make Arrow allocate with the C allocator in this process: call it where a process starts ingesting
    (the flow, and each worker's shard task)."""
    # Arrow's default allocator (mimalloc) keeps the pages of freed shards: RSS grew with the run
    # (+65 MB writing 20,000 documents, 1.65 GB peak at 100,000). The C allocator hands them back.
    pa.set_memory_pool(pa.system_memory_pool())


# -- where a run stages its files ------------------------------------------------------------


def as_store(lake: Store | str | os.PathLike[str]) -> Store:
    """The lake at ``lake``: a ``Store`` as is, or a local folder / URI (default storage options)."""
    return lake if isinstance(lake, Store) else Store(os.fspath(lake))


def default_scratch() -> str:
    """Local work area for runs on a remote lake: ``SIFTLAKE_SCRATCH``, else the system's temp folder."""
    return os.environ.get("SIFTLAKE_SCRATCH") or str(Path(tempfile.gettempdir()) / "siftlake")


@dataclass(frozen=True)
class RunPaths:
    """Where one run stages its work, and where its files land on commit.

    A run works in a local folder, ``staging``: ``LAKE/_staging/<run_id>`` for a local lake; for a lake
    on an object store, a scratch folder of this machine whose finished files are mirrored to
    ``LAKE/_staging/<run_id>/`` on the store (``persist``), so a run resumed on another machine, or a
    worker on another machine, finds them there (``pull_staged``).
    """

    lake: Store
    run_id: str
    ingest_date: str
    scratch: str = ""
    """Local work area of a remote lake's run (default: ``default_scratch()``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "lake", as_store(self.lake))

    @property
    def staging(self) -> Path:
        if not self.lake.remote:
            return self.lake.local(STAGING) / self.run_id
        return Path(self.scratch or default_scratch()) / self.lake.digest / self.run_id

    @property
    def staging_key(self) -> str:
        """The run's staging prefix in the lake (the same folder as ``staging`` for a local lake)."""
        return f"{STAGING}/{self.run_id}"

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
        """Path of the run's file in ``table``, relative to the lake (and to the staging folder). One file per
        table and run: a reader sees all of a run's rows of a table or none (a rename is atomic)."""
        return f"{table}/{PARTITION_KEY}={self.ingest_date}/run-{self.run_id}.parquet"

    @property
    def manifest(self) -> Path:
        return self.staging / "manifest.json"


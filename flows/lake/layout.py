"""The lake: layout, Parquet schemas, staging, atomic commit, run manifests, the lock, the index cache.

Layout (``LAKE`` is the lake root, a local folder or a prefix on an object store)::

    LAKE/documents/ingest_date=YYYY-MM-DD/run-<run_id>.parquet   every accepted document
    LAKE/rejects/ingest_date=YYYY-MM-DD/run-<run_id>.parquet     every unit that did not become one
    LAKE/_runs/<run_id>.json                                     one manifest per committed run
    LAKE/_index/                                                 the near-duplicate index (flows.dedup.index)
    LAKE/_inputs/run-<run_id>.parquet                            input objects a run committed (path, size, ETag)
    LAKE/_staging/<run_id>/                                      a run in progress (readers never look here)
    LAKE/_lock                                                   held by the run writing the lake

Every access goes through a ``flows.storage.Store``. A run works in a local staging folder (the
lake's own ``_staging/<run_id>`` on a local lake; a scratch folder mirrored to it on an object
store), then commits: it writes a ``COMMIT`` list of moves and performs them (one file per table,
then the index segment), writes the manifest and removes the staging folder. On an object store a
move is a copy of one object, atomic per object, and a segment's ``meta.json`` goes last. A run that
dies mid-commit is rolled forward by the next run, so a reader sees all of a run or none of it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import xxhash

from flows.document import Document, Reject
from flows.read import InputFile
from flows.storage import Store

# Arrow's default allocator (mimalloc) keeps the pages of freed shards: RSS grew with the run
# (+65 MB writing 20,000 documents, 1.65 GB peak at 100,000). The C allocator hands them back.
pa.set_memory_pool(pa.system_memory_pool())

DOCUMENTS = "documents"
REJECTS = "rejects"
RUNS = "_runs"
INDEX = "_index"
SEGMENTS = "segments"  # LAKE/_index/segments/<name>/: one folder per index segment
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


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file under a temporary name, then rename it: no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


# -- staging and commit ----------------------------------------------------------------------


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
        """Path of the run's file in ``table``, relative to the lake (and to the staging folder)."""
        return f"{table}/{PARTITION_KEY}={self.ingest_date}/run-{self.run_id}.parquet"

    @property
    def manifest(self) -> Path:
        return self.staging / "manifest.json"

    @property
    def known_ids(self) -> Path:
        return self.staging / "known_ids.npy"


def persist(paths: RunPaths, *files: Path) -> None:
    """Mirror finished local staging files to the lake's staging prefix, in order (remote lakes only)."""
    if not paths.lake.remote:
        return
    for path in files:
        paths.lake.upload(path, f"{paths.staging_key}/{path.relative_to(paths.staging).as_posix()}")


def fetch_staged(paths: RunPaths, relative: str) -> Path:
    """The local copy of staged file ``relative``, downloaded from the lake when this machine lacks it."""
    local = paths.staging / relative
    if paths.lake.remote and not local.exists():
        paths.lake.download(f"{paths.staging_key}/{relative}", local)
    return local


def pull_staged(paths: RunPaths) -> None:
    """Bring the shards other machines (or an earlier attempt) staged on the store into ``staging``.

    A shard's summary is mirrored last, so only shards whose summary is there are taken; locally the
    shard's Parquet file comes last, as it marks the shard done (``done_shards``).
    """
    if not paths.lake.remote:
        return
    prefix = f"{paths.staging_key}/shards"
    names = set(paths.lake.children(prefix))
    for summary in sorted(n for n in names if n.endswith(".json")):
        stem = summary[: -len(".json")]
        for name in (f"{stem}.rejects.parquet", summary, f"{stem}.parquet"):
            if name in names and not (paths.shards / name).exists():
                paths.lake.download(f"{prefix}/{name}", paths.shards / name)


def done_shards(paths: RunPaths) -> set[int]:
    """Numbers of the shards staged whole in ``staging``: a shard is done once its Parquet file has been
    renamed into place, which happens after its rejects and summary are written."""
    if not paths.shards.exists():
        return set()
    return {int(p.name[6:12]) for p in paths.shards.glob("shard-*[0-9].parquet")}


def fault_point(name: str) -> None:
    """Die here, as ``kill -9`` would, when ``SIFTLAKE_FAULT`` names this point; a no-op otherwise.

    Points: ``write:after_documents`` (the documents file is assembled in staging, the rejects file
    not yet), ``commit:before_marker`` (the run's files are written in staging, no COMMIT yet) and
    ``commit:after_first_move`` (COMMIT written, one of its renames done). Used by tests/test_crash.py.
    """
    if os.environ.get(FAULT_ENV) == name:
        os._exit(137)


def commit(paths: RunPaths, moves: Sequence[str]) -> None:
    """Make a staged run visible: record the moves, perform them, publish the manifest.

    On a local lake a move is a rename (the index segment moves as one folder). On an object store
    the run's files are first put under its staging prefix, then each is copied to its place (one
    atomic object each; a segment's ``meta.json`` last, so readers see whole segments only).
    """
    fault_point("commit:before_marker")
    store = paths.lake
    if store.remote:
        moves = _upload_for_commit(paths, moves)
    plan = {"moves": list(moves), "manifest": f"{RUNS}/{paths.run_id}.json"}
    store.write_bytes(f"{paths.staging_key}/{COMMIT}", json.dumps(plan).encode())
    _roll_forward(store, paths.run_id)
    if store.remote:
        shutil.rmtree(paths.staging, ignore_errors=True)


def _upload_for_commit(paths: RunPaths, moves: Sequence[str]) -> list[str]:
    """Put the run's local files under its staging prefix; return the object moves, folders expanded."""
    objects: list[str] = []
    for relative in moves:
        local = paths.staging / relative
        files = sorted(local.rglob("*"), key=lambda p: (p.name == SEGMENT_META, p.as_posix())) if local.is_dir() \
            else [local]
        for path in files:
            if path.is_file():
                objects.append(path.relative_to(paths.staging).as_posix())
                persist(paths, path)
    persist(paths, paths.manifest)
    return objects


# A segment of the index is complete once its meta.json is there (flows.dedup.index).
SEGMENT_META = "meta.json"


def _roll_forward(store: Store, run_id: str) -> None:
    staging = f"{STAGING}/{run_id}"
    plan = store.read_json(f"{staging}/{COMMIT}")
    for relative in plan["moves"]:
        if store.exists(f"{staging}/{relative}"):
            store.move(f"{staging}/{relative}", relative)
            fault_point("commit:after_first_move")
    if store.exists(f"{staging}/manifest.json"):
        store.move(f"{staging}/manifest.json", plan["manifest"])
    store.delete(staging)


def recover(lake: Store | str | os.PathLike[str]) -> list[str]:
    """Finish the commits that a crash interrupted; return the ids of the runs rolled forward."""
    store = as_store(lake)
    finished = []
    for run_id in store.children(STAGING):
        if store.exists(f"{STAGING}/{run_id}/{COMMIT}"):
            _roll_forward(store, run_id)
            finished.append(run_id)
    return finished


def unfinished_runs(lake: Store | str | os.PathLike[str]) -> list[str]:
    """Ids of the runs that stopped before their commit (resumable)."""
    store = as_store(lake)
    return [run_id for run_id in store.children(STAGING)
            if not run_id.startswith(".") and not store.exists(f"{STAGING}/{run_id}/{COMMIT}")]


_RUN_STATE = "run_state.json"


def write_run_state(paths: RunPaths, state: dict[str, Any]) -> None:
    """Record what a run is doing (its plan key, start), so a later run can resume it."""
    paths.staging.mkdir(parents=True, exist_ok=True)
    (paths.staging / _RUN_STATE).write_text(json.dumps(state))
    persist(paths, paths.staging / _RUN_STATE)


def read_run_state(lake: Store, run_id: str) -> dict[str, Any]:
    try:
        return dict(lake.read_json(f"{STAGING}/{run_id}/{_RUN_STATE}"))
    except (OSError, ValueError):
        return {}


def abandon_hint(lake: Store, run_id: str) -> str:
    """How to abandon an unfinished run, for messages."""
    return f"delete {lake.url(f'{STAGING}/{run_id}')}"


# -- what the lake already holds -------------------------------------------------------------


def _id_key(unit: str) -> int:
    """64-bit key of an id: ample to tell ids apart, 8 bytes a row in memory."""
    return xxhash.xxh3_64_intdigest(unit.encode())


def _id_keys(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.array([_id_key(unit) for unit in ids.to_pylist() if unit], dtype=np.uint64)


def known_unit_ids(lake: Store | str | os.PathLike[str]) -> np.ndarray:
    """Sorted 64-bit keys of every unit already in documents or rejects."""
    store = as_store(lake)
    keys = [np.empty(0, dtype=np.uint64)]
    for table, column in ((DOCUMENTS, "doc_id"), (REJECTS, "unit_id")):
        for batch in _scan(store, table, [column]):
            keys.append(_id_keys(batch.column(0)))
    return np.unique(np.concatenate(keys))


def arrow_filesystem(store: Store) -> pafs.FileSystem:
    """A pyarrow filesystem over the store (pyarrow's own for local folders, fsspec's otherwise)."""
    if not store.remote:
        return pafs.LocalFileSystem()
    return pafs.PyFileSystem(pafs.FSSpecHandler(store.fs))


def _data_files(store: Store, table: str) -> list[str]:
    """The table's Parquet files, as readers find them (no ``.``/``_`` names, no staging leftovers)."""
    return [key for key in store.files(table) if key.endswith(".parquet")
            and not any(part.startswith((".", "_")) for part in key.split("/"))]


def _scan(store: Store, table: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    files = _data_files(store, table)
    if not files:
        return
    dataset = ds.dataset([store.path(f) for f in files], format="parquet", filesystem=arrow_filesystem(store),
                         partitioning=ds.partitioning(flavor="hive"), partition_base_dir=store.path(table))
    yield from dataset.to_batches(columns=columns)


def read_run_documents(lake: Store, run_id: str, columns: list[str]) -> pa.Table | None:
    """The documents one committed run wrote (for its report), or None when it wrote none."""
    for key in _data_files(lake, DOCUMENTS):
        if key.endswith(f"/run-{run_id}.parquet"):
            with lake.fs.open(lake.path(key), "rb") as handle:
                table = pq.read_table(handle, columns=columns)
            return table if table.num_rows else None
    return None


def table_is_empty(lake: Store, table: str) -> bool:
    """True when the table has no file yet: the run then writes one, empty if need be, so readers'
    globs (``documents/**/*.parquet``) match something."""
    return not _data_files(lake, table)


def is_known(keys: np.ndarray, unit_id: str) -> bool:
    if not unit_id or keys.size == 0:
        return False
    key = np.uint64(_id_key(unit_id))
    position = int(np.searchsorted(keys, key))
    return position < keys.size and keys[position] == key


def read_manifests(lake: Store | str | os.PathLike[str]) -> list[dict[str, Any]]:
    store = as_store(lake)
    return [store.read_json(key) for key in store.files(RUNS) if key.endswith(".json")]


# -- inputs already ingested (objects on a store: skipped without downloading them) ------------

INPUTS = "_inputs"
_INPUTS_FILE = "inputs.parquet"
_INPUTS_SCHEMA = pa.schema([("source", pa.string()), ("rel", pa.string()), ("size", pa.int64()),
                            ("etag", pa.string()), ("run_id", pa.string())])


def save_inputs(paths: RunPaths, source: str, files: Sequence[InputFile]) -> None:
    """Stage the list of the run's remote input objects (path, size, ETag); committed with the run, it lets
    later runs skip objects that have not changed without downloading them."""
    remote = [f for f in files if f.etag]
    table = pa.table({"source": [source] * len(remote), "rel": [f.rel for f in remote],
                      "size": [f.size for f in remote], "etag": [f.etag for f in remote],
                      "run_id": [paths.run_id] * len(remote)}, schema=_INPUTS_SCHEMA)
    write_parquet_atomic(table, paths.staging / _INPUTS_FILE)
    persist(paths, paths.staging / _INPUTS_FILE)


def inputs_move(paths: RunPaths) -> str:
    """Where the run's input list goes on commit (relative to staging and to the lake), or "" if empty."""
    local = paths.staging / _INPUTS_FILE
    if not local.exists() or pq.ParquetFile(local).metadata.num_rows == 0:
        return ""
    target = paths.staging / INPUTS / f"run-{paths.run_id}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(local, target)
    return f"{INPUTS}/run-{paths.run_id}.parquet"


def changed_inputs(lake: Store, source: str, files: Sequence[InputFile]) -> tuple[list[InputFile], int]:
    """The files not ingested before with the same path, size and ETag, and how many were left out.

    Only objects on a store carry an ETag; local files are always listed, and their units already in
    the lake are skipped after hashing (``read_chunks``).
    """
    if not any(f.etag for f in files):
        return list(files), 0
    seen: set[tuple[str, int, str]] = set()
    for key in lake.files(INPUTS):
        with lake.fs.open(lake.path(key), "rb") as handle:
            table = pq.read_table(handle)
        for row in table.filter(pc.equal(table.column("source"), source)).to_pylist():
            seen.add((row["rel"], row["size"], row["etag"]))
    kept = [f for f in files if not (f.etag and (f.rel, f.size, f.etag) in seen)]
    return kept, len(files) - len(kept)


# -- one writer at a time --------------------------------------------------------------------


class LakeBusyError(RuntimeError):
    """Another run holds the lake."""


@contextlib.contextmanager
def lake_lock(lake: Store | str | os.PathLike[str], wait_s: float, lease_s: float = 60.0) -> Iterator[LeaseLock | None]:
    """Hold the lake's lock for a run; wait up to ``wait_s`` seconds for another run to finish.

    A local lake takes an OS lock (released when the process dies). A lake on an object store takes a
    lease (``LeaseLock``); it yields the lease, whose ``check()`` fails once another run took it over.
    """
    store = as_store(lake)
    if store.remote:
        lease = LeaseLock(store, lease_s)
        lease.acquire(wait_s)
        try:
            yield lease
        finally:
            lease.release()
        return
    with _os_lock(store.local(), wait_s):
        yield None


def check_not_busy(lake: Store, wait_s: float) -> None:
    """Raise ``LakeBusyError`` now when another run holds the lake and this one would not wait for it.

    A courtesy before the run starts (no Prefect server, no traceback); the run takes the lock itself.
    """
    if wait_s > 0:
        return
    if lake.remote:
        current = lake.read_with_etag(LOCK)
        if current is not None and _lease_of(current[0]).get("expires", 0) > time.time():
            raise LakeBusyError(LeaseLock(lake, 0).busy_message())
        return
    if lake.local(LOCK).exists():
        with _os_lock(lake.local(), 0):
            pass


@contextlib.contextmanager
def _os_lock(lake: Path, wait_s: float) -> Iterator[None]:
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
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


class LeaseLock:
    """The lock of a lake on an object store: the object ``LAKE/_lock``, created with a conditional write.

    It holds the owner (pid, host), since when, and a lease that a thread renews every third of
    ``lease_s`` with ``If-Match`` on the object's ETag. A run whose holder died is taken over once its
    lease has expired (again with ``If-Match``, so two runs cannot both take it). A holder that fails
    to renew, or finds the lock taken over, stops before it commits (``check``).
    """

    def __init__(self, store: Store, lease_s: float) -> None:
        self.store, self.lease_s = store, lease_s
        self.owner = f"pid {os.getpid()} on {socket.gethostname()}"
        self.since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.etag: str | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner, "since": self.since, "expires": time.time() + self.lease_s,
                           "lease_s": self.lease_s}).encode()

    def acquire(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            self.etag = self.store.create_exclusive(LOCK, self._body())
            if self.etag is None:
                self.etag = self._take_over_expired()
            if self.etag is not None:
                break
            if time.monotonic() >= deadline:
                raise LakeBusyError(self.busy_message())
            time.sleep(min(1.0, max(0.1, deadline - time.monotonic())))
        self._renewer = threading.Thread(target=self._renew, name="siftlake-lease", daemon=True)
        self._renewer.start()

    def _take_over_expired(self) -> str | None:
        current = self.store.read_with_etag(LOCK)
        if current is None:  # released meanwhile: try to create it again
            return self.store.create_exclusive(LOCK, self._body())
        holder = _lease_of(current[0])
        if holder.get("expires", 0) > time.time():
            return None
        return self.store.replace_if(LOCK, self._body(), current[1])

    def busy_message(self) -> str:
        current = self.store.read_with_etag(LOCK)
        holder = _lease_of(current[0]) if current else {}
        expires = holder.get("expires")
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)) if expires else "?"
        return (f"the lake {self.store.uri} is being written by {holder.get('owner', 'another run')} since "
                f"{holder.get('since', '?')} (its lease runs to {until} and is renewed while it works); wait for "
                "it to finish and run again, or set lock_wait_s to wait for it. If that run's machine is gone, "
                f"its lock is taken over once the lease expires (lease_s={holder.get('lease_s', '?')}).")

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                etag = self.store.replace_if(LOCK, self._body(), self.etag or "")
            except Exception as err:  # a store that went away: the lease may lapse; check() says so
                self.lost = f"could not renew the lake's lock ({type(err).__name__}: {err})"
                continue
            if etag is None:
                self.lost = "another run took over the lake's lock (this run's lease had expired)"
                return
            self.etag, self.lost = etag, None

    def check(self) -> None:
        """Raise ``LakeBusyError`` when this run no longer holds the lake (before committing)."""
        if self.lost:
            raise LakeBusyError(f"{self.store.uri}: {self.lost}; this run stops before its commit. Run it again "
                                "to resume its staged shards.")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(10)
        if self.etag and not self.lost:
            with contextlib.suppress(Exception):
                self.store.delete_if(LOCK, self.etag)


def _lease_of(data: bytes) -> dict[str, Any]:
    try:
        return dict(json.loads(data))
    except (ValueError, TypeError):
        return {}

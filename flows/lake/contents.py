"""What the lake holds: the unit ids in its tables (scanned), its tables and manifests, and the ledger of inputs
ingested."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from flows.lake.commit import persist
from flows.lake.layout import DOCUMENTS, INPUTS, REJECTS, RUNS, RunPaths, as_store, run_of_file, write_parquet_atomic
from flows.lake.units import KEY, unit_keys
from flows.read import InputFile
from flows.storage import Store


def known_unit_ids(lake: Store | str | os.PathLike[str]) -> np.ndarray:
    """Sorted 64-bit keys (``flows.lake.units.unit_key``) of every unit in documents or rejects, from a scan of
    both tables: O(lake) work and memory, done once per lake, when its known-units store is built."""
    store = as_store(lake)
    keys = [np.empty(0, dtype=KEY)]
    for table, column in ((DOCUMENTS, "doc_id"), (REJECTS, "unit_id")):
        for batch in _scan(store, table, [column]):
            keys.append(unit_keys([unit for unit in batch.column(0).to_pylist() if unit]))
    return np.unique(np.concatenate(keys))


def arrow_filesystem(store: Store) -> pafs.FileSystem:
    """A pyarrow filesystem over the store (pyarrow's own for local folders, fsspec's otherwise)."""
    if not store.remote:
        return pafs.LocalFileSystem()
    return pafs.PyFileSystem(pafs.FSSpecHandler(store.fs))


def table_file_sizes(store: Store, table: str) -> list[tuple[str, int]]:
    """The table's Parquet files as readers find them (no ``.``/``_`` names, no staging leftovers), sorted,
    with their sizes in bytes: one listing."""
    try:
        found = store.fs.find(store.path(table), detail=True)
    except FileNotFoundError:
        return []
    root = store.root + "/"
    keys = ((str(path)[len(root):], info) for path, info in found.items() if str(path).startswith(root))
    return sorted((key, int(info.get("size") or 0)) for key, info in keys if key.endswith(".parquet")
                  and not any(part.startswith((".", "_")) for part in key.split("/")))


def table_files(store: Store, table: str) -> list[str]:
    """The table's Parquet files, as readers find them (``table_file_sizes`` without the sizes)."""
    return [key for key, _ in table_file_sizes(store, table)]


def _scan(store: Store, table: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    files = table_files(store, table)
    if not files:
        return
    dataset = ds.dataset([store.path(f) for f in files], format="parquet", filesystem=arrow_filesystem(store),
                         partitioning=ds.partitioning(flavor="hive"), partition_base_dir=store.path(table))
    yield from dataset.to_batches(columns=columns)


def read_run_documents(lake: Store, run_id: str, columns: list[str]) -> pa.Table | None:
    """The documents one committed run wrote (for its report), or None when it wrote none."""
    for key in table_files(lake, DOCUMENTS):
        if run_of_file(key) == run_id:
            with lake.fs.open(lake.path(key), "rb") as handle:
                table = pq.read_table(handle, columns=columns)
            return table if table.num_rows else None
    return None


def table_is_empty(lake: Store, table: str) -> bool:
    """True when the table has no file yet: the run then writes one, empty if need be, so readers'
    globs (``documents/**/*.parquet``) match something."""
    return not table_files(lake, table)


def read_manifests(lake: Store | str | os.PathLike[str]) -> list[dict[str, Any]]:
    store = as_store(lake)
    return [store.read_json(key) for key in store.files(RUNS) if key.endswith(".json")]


# -- inputs already ingested (objects on a store: skipped without downloading them) ------------

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


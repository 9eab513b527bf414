"""The last step of a run's partitioned dedup (``flows.dedup.stages``): its new documents as index entries, a task
per index partition, each writing the run's segment of its partition from the staged shards' slices.

An index partition holds the entries homed in it (by doc-id key) and the band rows whose key falls in it
(``flows.dedup.index.write``). Its task reads every shard's ``entries`` slice for the homes, its ``bands`` slice
with the ``refs`` of their nodes for the band rows, and the signatures of its entries' nodes: no process holds the
run's entries, as ``write_partitioned`` over the whole run would. The segments equal that function's
(tests/dedup/test_stages.py).

A doc_id given twice in the run is indexed once, from its kept row when one of them is kept, else its first:
``unindexed_rows`` (in the decide task, from every shard's ``refs``: 16 bytes a row) names the others.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flows.dedup import staged
from flows.dedup.config import DedupConfig
from flows.dedup.index.files import encode, ranges
from flows.dedup.index.layout import partition_name
from flows.dedup.index.segment import KIND_CODES
from flows.dedup.index.write import Entries, sort_rows, write_part
from flows.lake.commit import fetch_staged, persist
from flows.lake.layout import SEGMENT_META, RunPaths

DECISIONS = "dedup/decisions.parquet"
UNINDEXED = "dedup/unindexed.npy"
_ROW_DTYPE = np.dtype([("shard", "<i8"), ("row", "<i8")])


def unindexed_rows(paths: RunPaths, numbers: Sequence[int], decisions: pa.Table) -> np.ndarray:
    """The run's new rows left out of the index (``(shard, row)``): each doc_id given twice keeps one entry, its
    first kept row, else its first row (rows in run order: shard, then row)."""
    keys, shards, rows = [], [], []
    for number in numbers:
        refs = staged.rows(paths, number, "refs", 0, staged.length(paths, number, "refs"))
        keys.append(refs["key"])
        shards.append(np.full(len(refs), number, np.int64))
        rows.append(refs["row"].astype(np.int64))
    if not keys:
        return np.zeros(0, _ROW_DTYPE)
    key, shard, row = np.concatenate(keys), np.concatenate(shards), np.concatenate(rows)
    order = np.argsort(key, kind="stable")
    repeated = np.zeros(len(key), dtype=bool)
    same = np.flatnonzero(key[order][1:] == key[order][:-1])
    repeated[order[same]] = repeated[order[same + 1]] = True
    at = np.flatnonzero(repeated)  # rare: the rest of the run is indexed as it is
    duplicate = _is_duplicate(decisions, shard[at], row[at])
    ranked = at[np.lexsort((row[at], shard[at], duplicate, key[at]))]
    first = np.r_[True, key[ranked][1:] != key[ranked][:-1]] if len(ranked) else np.zeros(0, bool)
    out = np.zeros(int((~first).sum()), _ROW_DTYPE)
    out["shard"], out["row"] = shard[ranked[~first]], row[ranked[~first]]
    return np.sort(out)


def _is_duplicate(decisions: pa.Table, shards: np.ndarray, rows: np.ndarray) -> np.ndarray:
    duplicate = decisions.filter(decisions.column("is_duplicate"))
    marked = {(s, r) for s, r in zip(duplicate.column("shard").to_pylist(), duplicate.column("row").to_pylist(),
                                     strict=True)}
    return np.array([(s, r) in marked for s, r in zip(shards.tolist(), rows.tolist(), strict=True)], dtype=bool)


def save_for_index(paths: RunPaths, decisions: pa.Table, unindexed: np.ndarray) -> None:
    """Stage what the index tasks read besides the shards' files (mirrored to a bucket lake's staging)."""
    decisions_path, unindexed_path = paths.staging / DECISIONS, paths.staging / UNINDEXED
    decisions_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(decisions, decisions_path.with_name(f".{decisions_path.name}.partial"))
    decisions_path.with_name(f".{decisions_path.name}.partial").replace(decisions_path)
    np.save(unindexed_path.with_name(f".{unindexed_path.name}.partial.npy"), unindexed, allow_pickle=False)
    unindexed_path.with_name(f".{unindexed_path.name}.partial.npy").replace(unindexed_path)
    persist(paths, decisions_path, unindexed_path)


def write_partition(root: Path, name: str, paths: RunPaths, part: int, numbers: Sequence[int],
                    config: DedupConfig) -> int:
    """Write the run's segment ``name`` of index partition ``part`` under ``root`` (and mirror it to a bucket
    lake's staging); return its count of entries (no segment when the partition gets no row)."""
    target = root / partition_name(part) / name
    shutil.rmtree(target, ignore_errors=True)  # a retried task writes afresh
    decisions = pq.read_table(fetch_staged(paths, DECISIONS))
    left_out = np.load(fetch_staged(paths, UNINDEXED))
    entries, id_keys = _homed_entries(paths, part, numbers, decisions, left_out, config)
    keys, refs = _band_rows(paths, part, numbers, left_out)
    if len(entries) == 0 and len(keys) == 0:
        return 0
    order = sort_rows(keys, refs)
    write_part(target, config, part, entries, id_keys, keys[order], refs[order])
    files = sorted(target.iterdir(), key=lambda f: (f.name == SEGMENT_META, f.name))
    persist(paths, *files)
    return len(entries)


def _kept(shards: np.ndarray, rows: np.ndarray, left_out: np.ndarray) -> np.ndarray:
    """Which of the rows ``(shards, rows)`` are indexed (not in ``left_out``)."""
    if len(left_out) == 0 or len(rows) == 0:
        return np.ones(len(rows), dtype=bool)
    wanted = np.zeros(len(rows), _ROW_DTYPE)
    wanted["shard"], wanted["row"] = shards, rows
    at = np.minimum(np.searchsorted(left_out, wanted), len(left_out) - 1)
    return np.asarray(left_out[at] != wanted)


def _homed_entries(paths: RunPaths, part: int, numbers: Sequence[int], decisions: pa.Table, left_out: np.ndarray,
                   config: DedupConfig) -> tuple[Entries, np.ndarray]:
    """The run's entries homed in ``part``, sorted by doc-id key, with their decisions and signatures."""
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
    for number in numbers:
        start, stop = staged.offsets(paths, number)[2, part : part + 2].tolist()
        if stop == start:
            continue
        rows = staged.rows(paths, number, "entries", start, stop)
        ids = staged.rows(paths, number, "ids", start, stop)
        kept = _kept(np.full(len(rows), number), rows["row"].astype(np.int64), left_out)
        rows, ids = rows[kept], ids[kept]
        nodes, back = np.unique(rows["node"], return_inverse=True)
        pieces.append((rows, ids, staged.picked_rows(paths, number, "sigs", nodes)[back.reshape(-1)], number))
    if not pieces:
        return _no_entries(config), np.empty(0, np.uint64)
    rows = np.concatenate([p[0] for p in pieces])
    width = max(p[1].dtype.itemsize for p in pieces)
    ids = np.concatenate([p[1].astype(f"S{width}") for p in pieces])
    shards = np.concatenate([np.full(len(p[0]), p[3], np.int64) for p in pieces])
    order = np.argsort(rows["key"], kind="stable")
    rows, ids, shards = rows[order], ids[order], shards[order]
    signatures = np.concatenate([p[2] for p in pieces])[order]
    cluster, duplicate, similarity, kind, containment = _decided(decisions, shards, rows["row"].astype(np.int64),
                                                                 ids)
    entries = Entries(signatures=signatures, doc_ids=ids, clusters=cluster, is_duplicate=duplicate,
                      similarity=similarity, sizes=rows["size"].copy(),
                      hashes=np.column_stack([rows["hash_hi"], rows["hash_lo"]]), kinds=kind,
                      containment=containment)
    return entries, rows["key"].copy()


def _decided(decisions: pa.Table, shards: np.ndarray, rows: np.ndarray,
             ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The entries' decisions: those of ``decisions``, else kept alone (their own doc_id as cluster)."""
    duplicate = np.zeros(len(rows), dtype=bool)
    similarity = np.ones(len(rows), np.float32)
    kind = np.zeros(len(rows), np.uint8)
    containment = np.ones(len(rows), np.float32)
    wanted = np.zeros(len(rows), _ROW_DTYPE)
    wanted["shard"], wanted["row"] = shards, rows
    decided = np.zeros(decisions.num_rows, _ROW_DTYPE)
    decided["shard"], decided["row"] = decisions.column("shard").to_numpy(), decisions.column("row").to_numpy()
    order = np.argsort(decided)
    at = np.minimum(np.searchsorted(decided[order], wanted), max(len(order) - 1, 0))
    hit = np.flatnonzero(decided[order][at] == wanted) if len(order) else np.empty(0, np.int64)
    source = order[at[hit]]
    clusters = decisions.column("dup_cluster").take(pa.array(source)).to_pylist()
    width = max([ids.dtype.itemsize, *(len(c.encode("utf-8")) for c in clusters)])
    cluster = ids.astype(f"S{width}")
    cluster[hit] = encode(clusters) if clusters else cluster[hit]
    duplicate[hit] = decisions.column("is_duplicate").to_numpy(zero_copy_only=False)[source]
    similarity[hit] = decisions.column("dup_similarity").to_numpy(zero_copy_only=False)[source]
    containment[hit] = decisions.column("dup_containment").to_numpy(zero_copy_only=False)[source]
    kinds = decisions.column("dup_kind").to_pylist()
    kind[hit] = [KIND_CODES.index(kinds[k]) for k in source.tolist()]
    return cluster, duplicate, similarity, kind, containment


def _band_rows(paths: RunPaths, part: int, numbers: Sequence[int], left_out: np.ndarray) -> tuple[np.ndarray,
                                                                                                 np.ndarray]:
    """The band rows of partition ``part``: each band key of a node in it, once per indexed row of the node
    (``refs``: the row's doc-id key)."""
    keys, refs = [], []
    for number in numbers:
        start, stop = staged.offsets(paths, number)[0, part : part + 2].tolist()
        if stop == start:
            continue
        bands = staged.rows(paths, number, "bands", start, stop)
        node_refs = staged.rows(paths, number, "refs", 0, staged.length(paths, number, "refs"))
        node_refs = node_refs[_kept(np.full(len(node_refs), number), node_refs["row"].astype(np.int64), left_out)]
        first = np.searchsorted(node_refs["node"], bands["node"], side="left")
        count = np.searchsorted(node_refs["node"], bands["node"], side="right") - first
        owner, at = ranges(first, count)
        keys.append(bands["key"][owner])
        refs.append(node_refs["key"][at])
    if not keys:
        return np.empty(0, np.uint64), np.empty(0, np.uint64)
    return np.concatenate(keys).astype(np.uint64), np.concatenate(refs).astype(np.uint64)


def _no_entries(config: DedupConfig) -> Entries:
    return Entries(signatures=np.empty((0, config.num_perm), np.uint32), doc_ids=encode([]), clusters=encode([]),
                   is_duplicate=np.empty(0, bool), similarity=np.empty(0, np.float32), sizes=np.empty(0, np.uint32),
                   hashes=np.empty((0, 2), np.uint64), kinds=np.empty(0, np.uint8),
                   containment=np.empty(0, np.float32))

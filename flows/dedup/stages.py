"""A run's duplicate detection as stages partitioned by band key: no process holds the whole run's fingerprints,
and no task reads more than one partition of the lake's index.

1. ``prepare_shard``, a task per staged shard: rows already in the lake get the lake's decision; the others'
   distinct fingerprints (nodes) have their band keys written partitioned by key (``flows.dedup.graph.partition_of``),
   with every new row's digest partitioned by digest, for exact copies across shards (``flows.dedup.staged``).
2. ``link_partition``, a task per partition: the band keys of one partition from every shard; the candidate
   pairs they give, verified from the signatures of the nodes they name only: near links and containment offers
   between nodes, and the rows of every node found in more than one row (exact copies). The same keys are
   searched once in the lake index's same partition: its lake candidates (node, doc-id key of a lake entry),
   staged by the entry's home partition.
3. ``match_partition`` (``flows.dedup.matching``), a task per index partition given candidates: the entries homed
   there, verified against the nodes (near and containment): each node's best lake matches in that partition,
   staged with the lake clusters they name, by the home partition of each cluster's kept document.
4. ``kept_partition`` (``flows.dedup.matching``), a task per index partition homing such a document: their
   signatures, set sizes and content hashes, staged (``StagedKept`` reads them back): the decision opens no index.
5. ``decide_run`` (``flows.dedup.join``), a task: the links of every partition and the lake matches, joined to
   the attributes of the rows they name, decided by the same keep policy as ``resolve`` (``decide_new``); every
   other row is kept, alone in its cluster. It holds the links and the rows they involve, not the run.
6. ``write_partition`` (``flows.dedup.run_index``), a task per index partition: the run's segment of it.

Link tasks stage their links (``PartitionLinks.save``) and candidates, match tasks their matches and the clusters
they name, kept tasks those clusters' kept documents, the decide task its decisions, so the flow's process holds
counts only. Stage 1 asks the lake for the decisions of rows it holds already (``LakeLookup``): in a run, only the
partitions homing rows the known-units store holds are opened (``flows.run_dedup.KnownRows``).

The decisions equal those of ``resolve`` on the whole run, whatever the number of partitions, shards or workers
(tests/dedup/test_stages.py): nodes are ordered by digest everywhere, links only ever add up, and a node's best
lake match is the best of its best per partition (highest similarity, then smallest cluster).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flows.dedup import staged
from flows.dedup.config import DedupConfig
from flows.dedup.fingerprint import band_keys, hash_words
from flows.dedup.graph import (
    Nodes,
    band_rows,
    bucket_pairs,
    distinct_nodes,
    first_positions,
    link_candidates,
    partition_of,
    unique_digests,
)
from flows.dedup.index.files import doc_id_keys, encode
from flows.dedup.index.lake_index import LakeIndex
from flows.dedup.index.part import PartSegment
from flows.dedup.index.query import band_candidates
from flows.dedup.records import DedupBatch, KnownDecisions, LakeMatches
from flows.lake.commit import fault_point, fetch_staged, persist
from flows.lake.layout import RunPaths, write_parquet_atomic

_DIGEST = ("hi", "lo")


def signature_matrix(column: pa.ChunkedArray, num_perm: int) -> np.ndarray:
    """A staged ``signature`` column as one ``(n, num_perm)`` uint32 array (one buffer, no object per row)."""
    width = 4 * num_perm
    fixed = column.cast(pa.binary(width)).combine_chunks()
    if len(fixed) == 0:
        return np.empty((0, num_perm), np.uint32)
    return np.frombuffer(fixed.buffers()[1], dtype=np.uint32, count=len(fixed) * num_perm,
                         offset=fixed.offset * width).reshape(len(fixed), -1).copy()


def staged_rows(paths: RunPaths, number: int, columns: Sequence[str]) -> pa.Table:
    """Columns of a staged shard (``signature`` stays binary: see ``signature_matrix``)."""
    relative = paths.shard_file(number).relative_to(paths.staging).as_posix()
    return pq.read_table(fetch_staged(paths, relative), columns=list(columns))


# -- 1. per shard ------------------------------------------------------------------------------------------


class LakeLookup(Protocol):
    """What stage 1 asks of the lake: the index (``LakeIndex``), or a lookup that opens less of it."""

    def decisions_of(self, doc_ids: Sequence[str]) -> KnownDecisions: ...

    def query_unpartitioned(self, sigs: np.ndarray, sizes: np.ndarray) -> tuple[LakeMatches, LakeMatches]: ...


def prepare_shard(paths: RunPaths, number: int, config: DedupConfig, index: LakeLookup) -> int:
    """Stage 1 for one shard (see the module docstring); returns its count of rows (documents)."""
    table = staged_rows(paths, number, ["doc_id", "content_hash", "signature", "n_shingles"])
    doc_ids = table.column("doc_id").to_pylist()
    known = index.decisions_of(doc_ids)
    new = np.flatnonzero(~known.found)
    sigs = signature_matrix(table.column("signature"), config.num_perm)[new]
    nodes = distinct_nodes(sigs, table.column("n_shingles").to_numpy()[new])
    near, inside = index.query_unpartitioned(nodes.signatures, nodes.sizes)  # the partition tasks search the rest
    _write_lake_rows(paths, number, known, new, nodes, near, inside)
    arrays = _partitioned(nodes, new, config)
    new_ids = [doc_ids[r] for r in new.tolist()]
    hashes = table.column("content_hash").take(pa.array(new, pa.int64())).to_pylist()
    arrays.update(_entries(nodes, new, new_ids, hashes, config, arrays.pop("offsets")))
    staged.save(paths, number, arrays)
    return int(table.num_rows)


def _entries(nodes: Nodes, new: np.ndarray, doc_ids: list[str], hashes: list[str], config: DedupConfig,
             offsets: np.ndarray) -> dict[str, np.ndarray]:
    """The shard's new rows as index entries: ``entries`` and ``ids`` sorted by home partition (the partition of
    the doc-id key) then key, ``refs`` (each row's node and doc-id key) by node; ``offsets`` gains the homes'
    starts."""
    ids = encode(doc_ids)
    entries = np.zeros(len(new), staged.ENTRY_DTYPE)
    entries["key"] = doc_id_keys(ids)
    words = hash_words(hashes)
    entries["hash_hi"], entries["hash_lo"] = words[:, 0], words[:, 1]
    entries["size"], entries["row"], entries["node"] = nodes.sizes[nodes.of_row], new, nodes.of_row
    refs = np.zeros(len(new), staged.REF_DTYPE)
    refs["node"], refs["row"], refs["key"] = entries["node"], entries["row"], entries["key"]
    home = partition_of(entries["key"], config.partitions)
    order = np.lexsort((entries["row"], entries["key"], home))
    starts = np.searchsorted(home[order], np.arange(config.partitions + 1, dtype=np.uint64))
    return {"entries": entries[order], "ids": ids[order], "refs": refs[np.lexsort((refs["row"], refs["node"]))],
            "offsets": np.vstack([offsets, starts]).astype(np.int64)}


def _partitioned(nodes: Nodes, new: np.ndarray, config: DedupConfig) -> dict[str, np.ndarray]:
    first = first_positions(nodes.of_row, len(nodes))  # each node's first row
    node_rows = np.zeros(len(nodes), staged.NODE_DTYPE)
    node_rows["hi"], node_rows["lo"] = nodes.digests[:, 0], nodes.digests[:, 1]
    node_rows["size"], node_rows["row"] = nodes.sizes, new[first] if len(new) else first
    keys, members = band_rows(band_keys(nodes.signatures, config)) if len(nodes) else (np.empty(0, np.uint64),) * 2
    bands = np.zeros(len(keys), staged.BAND_DTYPE)
    bands["key"], bands["node"] = keys, members
    bands["hi"], bands["lo"] = nodes.digests[members.astype(np.int64), 0], nodes.digests[members.astype(np.int64), 1]
    copies = np.zeros(len(new), staged.COPY_DTYPE)
    copies["hi"], copies["lo"] = nodes.digests[nodes.of_row, 0], nodes.digests[nodes.of_row, 1]
    copies["row"] = new
    parts = config.partitions
    band_part, copy_part = partition_of(bands["key"], parts), partition_of(copies["lo"], parts)
    bands, copies = bands[np.argsort(band_part, kind="stable")], copies[np.argsort(copy_part, kind="stable")]
    edges = np.arange(parts + 1, dtype=np.uint64)
    offsets = np.stack([np.searchsorted(np.sort(band_part), edges), np.searchsorted(np.sort(copy_part), edges)])
    return {"nodes": node_rows, "sigs": nodes.signatures, "bands": bands, "copies": copies,
            "offsets": offsets.astype(np.int64)}


def _write_lake_rows(paths: RunPaths, number: int, known: KnownDecisions, new: np.ndarray, nodes: Nodes,
                     near: LakeMatches, inside: LakeMatches) -> None:
    """The shard's rows the lake decided already, and its new rows with a near or containing lake match."""
    found = np.flatnonzero(known.found)
    rows: dict[str, list[object]] = {name: [] for name in _LAKE_COLUMNS}
    for r in found.tolist():
        _append(rows, r, None, known=(known.dup_cluster[r], bool(known.is_duplicate[r]),
                                      float(known.dup_similarity[r]), known.dup_kind[r],
                                      float(known.dup_containment[r])))
    best_near = dict(zip(near.query_rows.tolist(), zip(near.similarity.tolist(), near.dup_cluster, strict=True),
                         strict=True))
    best_in = dict(zip(inside.query_rows.tolist(), zip(inside.similarity.tolist(), inside.dup_cluster, strict=True),
                       strict=True))
    for k, node in enumerate(nodes.of_row.tolist()):
        if node in best_near or node in best_in:
            _append(rows, int(new[k]), nodes.digests[node], near=best_near.get(node), inside=best_in.get(node))
    path = staged.local(paths, number, "lake.parquet")
    write_parquet_atomic(pa.table(rows, schema=_LAKE_SCHEMA), path)
    persist(paths, path)


_LAKE_SCHEMA = pa.schema([
    ("row", pa.int64()), ("hi", pa.uint64()), ("lo", pa.uint64()),
    ("near_similarity", pa.float64()), ("near_cluster", pa.string()),
    ("in_estimate", pa.float64()), ("in_cluster", pa.string()),
    ("known_cluster", pa.string()), ("known_duplicate", pa.bool_()), ("known_similarity", pa.float64()),
    ("known_kind", pa.string()), ("known_containment", pa.float64()),
])
_LAKE_COLUMNS = _LAKE_SCHEMA.names


def _append(rows: dict[str, list[object]], row: int, digest: np.ndarray | None,
            near: tuple[float, str] | None = None, inside: tuple[float, str] | None = None,
            known: tuple[str, bool, float, str | None, float] | None = None) -> None:
    values = [row, *(digest.tolist() if digest is not None else (None, None)), *(near or (None, None)),
              *(inside or (None, None)), *(known or (None,) * 5)]
    for name, value in zip(_LAKE_COLUMNS, values, strict=True):
        rows[name].append(value)


# -- 2. per partition ----------------------------------------------------------------------------------------


@dataclass
class PartitionLinks:
    """What one partition found, nodes named by digest ``(hi, lo)``: near links, containment offers, the
    nodes those name (digest, set size, a shard and row holding it), and the rows of nodes held by several rows."""

    near: np.ndarray
    """``(k, 4)`` uint64: the digests of both ends."""
    offers: np.ndarray
    """``(k, 4)`` uint64: the small node's digest, then the large one's."""
    estimates: np.ndarray
    nodes: np.ndarray
    """``(m, 4)`` uint64: hi, lo, then a shard and row holding the node."""
    copies: np.ndarray
    """``(c, 4)`` uint64: hi, lo, shard, row, for each row of a node held by two rows or more."""


    @classmethod
    def staged(cls, paths: RunPaths, part: int) -> PartitionLinks:
        """Partition ``part``'s links, as ``save`` staged them (downloaded when this machine lacks them)."""
        with np.load(fetch_staged(paths, _links_file(part))) as saved:
            return cls(**{f.name: saved[f.name] for f in fields(cls)})

    def save(self, paths: RunPaths, part: int) -> None:
        """Stage the links for the decide task (mirrored to a bucket lake's staging)."""
        staged.save_arrays(paths, _links_file(part), {f.name: getattr(self, f.name) for f in fields(self)})


def _links_file(part: int) -> str:
    return f"{staged.DEDUP_DIR}/links-p{part:04d}.npz"


def link_partition(paths: RunPaths, part: int, numbers: Sequence[int], config: DedupConfig,
                   index: LakeIndex) -> tuple[PartitionLinks, np.ndarray]:
    """Stage 2 for partition ``part`` (see the module docstring): its links, and its lake candidates
    (``CANDIDATE_DTYPE``, sorted by the home partition of the lake entry, for ``match_partition``)."""
    fault_point("dedup:link")  # crash tests only (SIFTLAKE_FAULT)
    bands, where = _gather(paths, part, numbers, "bands", 0)
    candidates = _lake_candidates(bands, where, index.partition_segments(part), config)
    shared = _shared(bands["key"])  # a key held by one row pairs nothing: most rows, left out at once
    bands, where = bands[shared], where[shared]
    digests, members = unique_digests(np.column_stack([bands["hi"], bands["lo"]]))
    # A node held by several shards is one member of its buckets, as in one process: a bucket is cut to
    # ``max_candidates_per_band`` following members, and a repeated member would shift the cut.
    order = np.lexsort((members, bands["key"]))
    repeated = np.zeros(len(order), dtype=bool)
    repeated[1:] = (bands["key"][order][1:] == bands["key"][order][:-1]) & (members[order][1:] == members[order][:-1])
    once = np.sort(order[~repeated])
    bands, where, members = bands[once], where[once], members[once]
    pairs = [np.concatenate(pair) for pair in bucket_pairs(bands["key"], members, config.max_candidates_per_band)]
    involved = np.unique(np.concatenate(pairs)) if pairs else np.empty(0, np.int64)
    source = first_positions(members, len(digests))[involved]
    nodes, rows = involved_nodes(paths, digests[involved], where[source], bands["node"][source].astype(np.int64),
                                  config)
    keep = np.isin(members, involved)
    compact = np.searchsorted(involved, members[keep])
    links = link_candidates(nodes, [(bands["key"][keep], compact)], config)
    near, (offers, estimates) = links.near_pairs(), links.offer_pairs()
    named = np.unique(np.concatenate([near.reshape(-1), offers.reshape(-1)])).astype(np.int64)
    info = np.column_stack([nodes.digests[named], where[source[named]].astype(np.uint64),
                            rows[named].astype(np.uint64)])
    found = PartitionLinks(_as_digests(nodes, near), _as_digests(nodes, offers), estimates, info,
                           _copies(paths, part, numbers))
    return found, candidates


def _lake_candidates(bands: np.ndarray, where: np.ndarray, segments: Sequence[PartSegment],
                     config: DedupConfig) -> np.ndarray:
    """Each (run node, lake entry) pair sharing a band key of this partition, once (a node held by several
    shards: one of them), sorted by the entry's home partition, then its doc-id key."""
    segments = [s for s in segments if s.rows and s.banding == (config.bands, config.rows)]
    if not segments or len(bands) == 0:
        return np.zeros(0, staged.CANDIDATE_DTYPE)
    position, refs = band_candidates(segments, bands["key"], config.max_candidates_per_band)
    found = np.zeros(len(refs), staged.CANDIDATE_DTYPE)
    found["ref"], found["hi"], found["lo"] = refs, bands["hi"][position], bands["lo"][position]
    found["shard"], found["node"] = where[position], bands["node"][position]
    found = found[np.lexsort((found["shard"], found["lo"], found["hi"], found["ref"]))]
    once = np.r_[True, (found["ref"][1:] != found["ref"][:-1]) | (found["hi"][1:] != found["hi"][:-1])
                 | (found["lo"][1:] != found["lo"][:-1])] if len(found) else np.zeros(0, bool)
    found = found[once]
    return found[np.argsort(partition_of(found["ref"], config.partitions), kind="stable")]


def save_candidates(paths: RunPaths, part: int, candidates: np.ndarray, partitions: int) -> list[int]:
    """Stage a link task's lake candidates; return how many go to each index partition (the flow hands each
    match task its slice of every link task's file)."""
    staged.save_array(paths, candidates_file(part), candidates)
    counts = np.bincount(partition_of(candidates["ref"], partitions).astype(np.int64), minlength=partitions)
    return [int(c) for c in counts]


def candidates_file(part: int) -> str:
    return f"{staged.DEDUP_DIR}/lake-p{part:04d}.npy"


def _shared(keys: np.ndarray) -> np.ndarray:
    """The rows (ascending) whose key another row holds too."""
    order = np.argsort(keys)
    same = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    held = np.zeros(len(keys), dtype=bool)
    held[order[same]] = held[order[same + 1]] = True
    return np.flatnonzero(held)


def _gather(paths: RunPaths, part: int, numbers: Sequence[int], name: str, which: int) -> tuple[np.ndarray,
                                                                                                 np.ndarray]:
    """Partition ``part``'s slice of every shard's ``bands`` or ``copies`` (``which``), and each row's shard."""
    slices, shards = [], []
    for number in numbers:
        start, stop = staged.offsets(paths, number)[which, part : part + 2].tolist()
        if stop > start:
            slices.append(staged.rows(paths, number, name, start, stop))
            shards.append(np.full(stop - start, number, dtype=np.int64))
    dtype = staged.BAND_DTYPE if name == "bands" else staged.COPY_DTYPE
    if not slices:
        return np.zeros(0, dtype), np.empty(0, np.int64)
    return np.concatenate(slices), np.concatenate(shards)


def involved_nodes(paths: RunPaths, digests: np.ndarray, shards: np.ndarray, indexes: np.ndarray,
                    config: DedupConfig) -> tuple[Nodes, np.ndarray]:
    """The nodes candidate pairs name, read from the shards that hold them (signature, set size), and a row of
    each in its shard."""
    sigs = np.zeros((len(digests), config.num_perm), np.uint32)
    sizes = np.zeros(len(digests), np.uint32)
    rows = np.zeros(len(digests), np.int64)
    for number in np.unique(shards).tolist():
        mine = np.flatnonzero(shards == number)
        wanted, back = np.unique(indexes[mine], return_inverse=True)
        sigs[mine] = staged.picked_rows(paths, number, "sigs", wanted)[back.reshape(-1)]
        node_rows = staged.picked_rows(paths, number, "nodes", wanted)[back.reshape(-1)]
        sizes[mine], rows[mine] = node_rows["size"], node_rows["row"]
    return Nodes(sigs, sizes, digests.astype(np.uint64), np.arange(len(digests))), rows


def _as_digests(nodes: Nodes, pairs: np.ndarray) -> np.ndarray:
    return np.column_stack([nodes.digests[pairs[:, 0]], nodes.digests[pairs[:, 1]]]).astype(np.uint64)


def _copies(paths: RunPaths, part: int, numbers: Sequence[int]) -> np.ndarray:
    """Every row of the nodes of this partition's digests held by two rows or more (exact copies)."""
    copies, where = _gather(paths, part, numbers, "copies", 1)
    if len(copies) == 0:
        return np.empty((0, 4), np.uint64)
    digests = np.column_stack([copies["hi"], copies["lo"]])
    _, inverse = unique_digests(digests)
    several = np.bincount(inverse)[inverse] > 1
    return np.column_stack([digests[several], where[several].astype(np.uint64),
                            copies["row"][several].astype(np.uint64)])


def no_rows(config: DedupConfig) -> DedupBatch:
    """An empty batch of the config's signature width."""
    return DedupBatch([], [], np.empty((0, config.num_perm), np.uint32), np.empty(0), np.empty(0, np.int64),
                      np.empty(0, np.uint32))

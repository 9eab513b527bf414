"""The lake side of a run's partitioned dedup (``flows.dedup.stages``), a task per index partition:

3. ``match_partition``: the lake candidates the link tasks staged for this partition (entries homed here),
   verified against the run's nodes (near and containment): each node's best lake matches here, staged, with the
   lake clusters they name sorted by the home partition of each cluster's kept document (``save_wanted``).
4. ``kept_partition``: the signature, set size and content hash of the kept documents homed here that the match
   tasks named, staged; the decide task reads them back (``StagedKept``) and opens no index.

Each task opens its own partition of the lake's index only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flows.dedup import staged
from flows.dedup.config import DedupConfig
from flows.dedup.graph import first_positions, partition_of, unique_digests
from flows.dedup.index.files import doc_id_keys, encode
from flows.dedup.index.lake_index import LakeIndex
from flows.dedup.index.query import Query
from flows.dedup.records import KeptDocuments, LakeMatches
from flows.dedup.stages import candidates_file, involved_nodes, signature_matrix
from flows.lake.commit import fetch_staged, persist
from flows.lake.layout import RunPaths, write_parquet_atomic

MATCHES_SCHEMA = pa.schema([
    ("shard", pa.int64()), ("row", pa.int64()), ("hi", pa.uint64()), ("lo", pa.uint64()),
    ("near_similarity", pa.float64()), ("near_cluster", pa.string()),
    ("in_estimate", pa.float64()), ("in_cluster", pa.string()),
])
"""A node's best lake matches among one partition's entries, named by its digest and one row holding it."""


def match_sources(counts: Sequence[Sequence[int]], part: int) -> list[tuple[int, int, int]]:
    """Index partition ``part``'s slice of each link task's candidates file, from the counts the link tasks
    returned (``counts[link partition][index partition]``): ``(link partition, start, stop)``, non-empty only."""
    out = []
    for link, row in enumerate(counts):
        if row[part]:
            start = int(sum(row[:part]))
            out.append((link, start, start + int(row[part])))
    return out


def match_partition(paths: RunPaths, part: int, sources: Sequence[tuple[int, int, int]], config: DedupConfig,
                    index: LakeIndex) -> pa.Table:
    """Stage 3 for index partition ``part``: the lake candidates whose entry is homed here, from every link
    task (``match_sources``), verified against the entries' signatures (near and containment, as ``Query``); each
    node's best matches here (``MATCHES_SCHEMA``). It reads this partition of the index only."""
    found = [staged.file_rows(paths, candidates_file(link), start, stop) for link, start, stop in sources]
    if not found:
        return MATCHES_SCHEMA.empty_table()
    candidates = np.concatenate(found)
    digests, node_of = unique_digests(np.column_stack([candidates["hi"], candidates["lo"]]))
    first = first_positions(node_of, len(digests))
    nodes, rows = involved_nodes(paths, digests, candidates["shard"][first].astype(np.int64),
                                  candidates["node"][first].astype(np.int64), config)
    query = Query([s for s in index.partition_segments(part) if s.count], config, nodes.signatures,
                  nodes.sizes.astype(np.int64))
    pairs = np.lexsort((candidates["ref"], node_of))
    for start in range(0, len(pairs), _PAIRS_AT_ONCE):
        chunk = pairs[start : start + _PAIRS_AT_ONCE]
        query.verify_pairs(node_of[chunk], candidates["ref"][chunk])
    near, inside = query.best.matches(query.segments), query.containing.matches(query.segments)
    matched = np.union1d(near.query_rows, inside.query_rows).astype(np.int64)
    return pa.table({
        "shard": candidates["shard"][first[matched]].astype(np.int64), "row": rows[matched],
        "hi": digests[matched, 0], "lo": digests[matched, 1],
        **_aligned(matched, near, "near_similarity", "near_cluster"),
        **_aligned(matched, inside, "in_estimate", "in_cluster"),
    }, schema=MATCHES_SCHEMA)


# Candidate pairs verified in one call (each pair's ref found, then verified): ~130 MB at most.
_PAIRS_AT_ONCE = 1 << 23


def _aligned(matched: np.ndarray, found: LakeMatches, similarity: str, cluster: str) -> dict[str, pa.Array]:
    """``found``'s similarity and cluster at the positions of ``matched`` (nodes, sorted), null where it has none."""
    at = np.searchsorted(matched, found.query_rows)
    sims = np.full(len(matched), np.nan)
    sims[at] = found.similarity
    clusters: list[str | None] = [None] * len(matched)
    for k, c in zip(at.tolist(), found.dup_cluster, strict=True):
        clusters[k] = c
    has = np.zeros(len(matched), dtype=bool)
    has[at] = True
    return {similarity: pa.array(sims, pa.float64(), mask=~has), cluster: pa.array(clusters, pa.string())}


def save_matches(paths: RunPaths, part: int, matches: pa.Table) -> None:
    """Stage a match task's table for the decide task."""
    path = paths.staging / _matches_file(part)
    write_parquet_atomic(matches, path)
    persist(paths, path)


def staged_matches(paths: RunPaths, parts: Sequence[int]) -> list[pa.Table]:
    """The match tasks' tables of index partitions ``parts`` (those that found a match)."""
    return [pq.read_table(fetch_staged(paths, _matches_file(part))) for part in parts]


# -- 4. the kept documents of the matched lake clusters ------------------------------------------------------


def save_wanted(paths: RunPaths, part: int, matches: pa.Table, partitions: int) -> list[int]:
    """Stage the lake clusters a match task's table names (each the doc_id of the cluster's kept document),
    sorted by the index partition they are homed in, for ``kept_partition``; return how many go to each."""
    named = pa.chunked_array([*matches.column("near_cluster").chunks, *matches.column("in_cluster").chunks],
                             pa.string())
    clusters = encode(sorted(set(named.drop_null().to_pylist())))
    home = partition_of(doc_id_keys(clusters), partitions)
    staged.save_array(paths, _wanted_file(part), clusters[np.argsort(home, kind="stable")])
    return [int(c) for c in np.bincount(home.astype(np.int64), minlength=partitions)]


KEPT_SCHEMA = pa.schema([("doc_id", pa.string()), ("found", pa.bool_()), ("signature", pa.binary()),
                         ("size", pa.uint32()), ("hash_hi", pa.uint64()), ("hash_lo", pa.uint64())])
"""What a kept task stages of each kept lake document: as ``LakeIndex.kept_documents`` gives it."""


def kept_partition(paths: RunPaths, part: int, sources: Sequence[tuple[int, int, int]], index: LakeIndex) -> int:
    """Stage 4 for index partition ``part``: the signature, set size and content hash of the kept documents homed
    here of the lake clusters the match tasks named (``match_sources`` over ``save_wanted``'s counts), for the
    decide task, which then opens no index. Returns their count."""
    named = [staged.file_rows(paths, _wanted_file(match), start, stop) for match, start, stop in sources]
    ids = sorted({bytes(d).decode("utf-8") for rows in named for d in rows.tolist()})
    kept = index.kept_documents(ids)
    table = pa.table({"doc_id": ids, "found": kept.found,
                      "signature": [row.tobytes() for row in np.asarray(kept.signatures, np.uint32)],
                      "size": kept.sizes, "hash_hi": kept.hashes[:, 0], "hash_lo": kept.hashes[:, 1]},
                     schema=KEPT_SCHEMA)
    path = paths.staging / _kept_file(part)
    write_parquet_atomic(table, path)
    persist(paths, path)
    return len(ids)


class StagedKept:
    """The kept tasks' staged documents, looked up as ``LakeIndex.kept_documents`` (``records.KeptLookup``)."""

    def __init__(self, paths: RunPaths, parts: Sequence[int], config: DedupConfig) -> None:
        tables = [pq.read_table(fetch_staged(paths, _kept_file(part))) for part in parts]
        table = pa.concat_tables(tables) if tables else KEPT_SCHEMA.empty_table()
        self.row = {doc_id: r for r, doc_id in enumerate(table.column("doc_id").to_pylist())}
        self.found = table.column("found").to_numpy(zero_copy_only=False)
        self.signatures = signature_matrix(table.column("signature"), config.num_perm)
        self.sizes = table.column("size").to_numpy()
        self.hashes = np.column_stack([table.column("hash_hi").to_numpy(), table.column("hash_lo").to_numpy()])

    def kept_documents(self, doc_ids: Sequence[str]) -> KeptDocuments:
        at = np.array([self.row.get(d, -1) for d in doc_ids], dtype=np.int64)
        there = at >= 0
        out = KeptDocuments(np.zeros(len(doc_ids), bool), np.zeros((len(doc_ids), self.signatures.shape[1]), np.uint32),
                            np.zeros(len(doc_ids), np.uint32), np.zeros((len(doc_ids), 2), np.uint64))
        out.found[there] = self.found[at[there]]
        out.signatures[there], out.sizes[there] = self.signatures[at[there]], self.sizes[at[there]]
        out.hashes[there] = self.hashes[at[there]]
        return out


def _wanted_file(part: int) -> str:
    return f"{staged.DEDUP_DIR}/wanted-p{part:04d}.npy"


def _kept_file(part: int) -> str:
    return f"{staged.DEDUP_DIR}/kept-p{part:04d}.parquet"


def _matches_file(part: int) -> str:
    return f"{staged.DEDUP_DIR}/matches-p{part:04d}.parquet"

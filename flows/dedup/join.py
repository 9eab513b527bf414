"""Stage 3 of a run's partitioned dedup (``flows.dedup.stages``): the partitions' links and the lake matches,
joined to the rows they name, decided by the keep policy of ``flows.dedup.resolve``.

Only rows that a link, an exact copy or a lake match names are read back (their fingerprints and the columns
the keep policy uses); every other row of the run is kept, alone in its cluster, and is not in the table this
returns. Memory follows the duplicates, not the run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flows.dedup import staged
from flows.dedup.config import DedupConfig
from flows.dedup.graph import Links, Nodes, distinct_nodes
from flows.dedup.matching import staged_matches
from flows.dedup.records import DedupBatch, DedupDecisions, KeptLookup, LakeMatches
from flows.dedup.resolve import decide_new
from flows.dedup.stages import PartitionLinks, no_rows, signature_matrix, staged_rows
from flows.lake.commit import fetch_staged
from flows.lake.layout import RunPaths

DECISIONS_SCHEMA = pa.schema([
    ("shard", pa.int64()), ("row", pa.int64()),
    ("dup_cluster", pa.string()), ("is_duplicate", pa.bool_()), ("dup_similarity", pa.float64()),
    ("dup_kind", pa.string()), ("dup_containment", pa.float64()),
])
"""The decisions of a run's rows that are not simply kept alone (``shard``, ``row``: the row of a staged shard)."""

_ROW_COLUMNS = ["doc_id", "content_hash", "quality_score", "n_chars", "n_shingles", "signature"]


def decide_run(paths: RunPaths, numbers: Sequence[int], found: Sequence[PartitionLinks], config: DedupConfig,
               index: KeptLookup, matched_parts: Sequence[int]) -> pa.Table:
    """The decisions of every row named by the partitions' links, an exact copy or the lake (``DECISIONS_SCHEMA``);
    ``index``: where the kept lake documents are read (the kept tasks' staged ones, ``matching.StagedKept``);
    ``matched_parts``: the index partitions whose match task found lake matches (``matching.match_partition``)."""
    lake = _lake_rows(paths, numbers, matched_parts)
    matched = lake.filter(pc.is_valid(lake.column("hi")))
    wanted = np.unique(np.concatenate([
        *(f.nodes[:, 2:4] for f in found), *(f.copies[:, 2:4] for f in found),
        np.column_stack([matched.column("shard").to_numpy(), matched.column("row").to_numpy()]).astype(np.uint64),
    ]).astype(np.int64).reshape(-1, 2), axis=0)
    if len(wanted) == 0:
        return _known(lake)
    batch = _read_rows(paths, wanted, config)
    nodes = distinct_nodes(batch.signatures, batch.sizes)
    links = _links(nodes, found)
    out = DedupDecisions.all_kept(batch.doc_ids)
    decide_new(batch, np.arange(len(batch)), nodes, links, _lake_matches(nodes, wanted, matched), index, out)
    return pa.concat_tables([_table(wanted, out), _known(lake)])


def _lake_rows(paths: RunPaths, numbers: Sequence[int], matched: Sequence[int]) -> pa.Table:
    """The shards' rows the lake decided, and the lake matches: a row holding each matched node (the others holding
    it are named by exact copies, and a node's rows match alike)."""
    tables = staged_matches(paths, matched)
    for number in numbers:
        table = pq.read_table(fetch_staged(paths, staged.relative(number, "lake.parquet")))
        tables.append(table.append_column("shard", pa.array(np.full(table.num_rows, number, np.int64))))
    if not tables:
        return pa.table({"shard": pa.array([], pa.int64()), "row": pa.array([], pa.int64()),
                         "hi": pa.array([], pa.uint64())})
    return pa.concat_tables(tables, promote_options="default")


def _read_rows(paths: RunPaths, wanted: np.ndarray, config: DedupConfig) -> DedupBatch:
    """The keep policy's columns and the fingerprints of rows ``wanted`` (``(shard, row)``, sorted)."""
    parts = []
    for number in np.unique(wanted[:, 0]).tolist():
        rows = wanted[wanted[:, 0] == number, 1]
        parts.append(staged_rows(paths, number, _ROW_COLUMNS).take(pa.array(rows)))
    if not parts:
        return no_rows(config)
    table = pa.concat_tables(parts)
    return DedupBatch(
        doc_ids=table.column("doc_id").to_pylist(),
        content_hashes=table.column("content_hash").to_pylist(),
        signatures=signature_matrix(table.column("signature"), config.num_perm),
        quality=table.column("quality_score").to_numpy(),
        lengths=table.column("n_chars").to_numpy(),
        sizes=table.column("n_shingles").to_numpy(),
    )


def _links(nodes: Nodes, found: Sequence[PartitionLinks]) -> Links:
    """The partitions' links and offers with their digests turned into this join's node numbers."""
    number = {tuple(d): i for i, d in enumerate(nodes.digests.tolist())}

    def as_nodes(pairs: np.ndarray) -> np.ndarray:
        ends = [(number[(a, b)], number[(c, d)]) for a, b, c, d in pairs.tolist()]
        return np.array(ends, dtype=np.int64).reshape(-1, 2)

    links = Links()
    for f in found:
        links.near.append(as_nodes(f.near))
        links.offers.append(as_nodes(f.offers))
        links.estimates.append(np.asarray(f.estimates, dtype=np.float64))
    return links


def _lake_matches(nodes: Nodes, wanted: np.ndarray, matched: pa.Table) -> tuple[LakeMatches, LakeMatches]:
    """The best near and containing lake match of each node, from its rows' matches (rows of a node match alike)."""
    position = {(s, r): k for k, (s, r) in enumerate(wanted.tolist())}
    rows = [position[(s, r)] for s, r in zip(matched.column("shard").to_pylist(), matched.column("row").to_pylist(),
                                             strict=True)]
    query = nodes.of_row[np.array(rows, dtype=np.int64)] if rows else np.empty(0, np.int64)

    def matches(similarity: str, cluster: str) -> LakeMatches:
        has = matched.column(cluster).is_valid().to_numpy(zero_copy_only=False)
        clusters = [c for c, h in zip(matched.column(cluster).to_pylist(), has.tolist(), strict=True) if h]
        sims = matched.column(similarity).to_numpy(zero_copy_only=False)[has] if len(has) else np.empty(0)
        return LakeMatches(query[has] if len(has) else query, list(clusters), list(clusters), sims)

    return matches("near_similarity", "near_cluster"), matches("in_estimate", "in_cluster")


def _table(wanted: np.ndarray, out: DedupDecisions) -> pa.Table:
    return pa.table({
        "shard": wanted[:, 0], "row": wanted[:, 1], "dup_cluster": out.dup_cluster,
        "is_duplicate": out.is_duplicate, "dup_similarity": out.dup_similarity,
        "dup_kind": pa.array(out.dup_kind, pa.string()), "dup_containment": out.dup_containment,
    }, schema=DECISIONS_SCHEMA)


def _known(lake: pa.Table) -> pa.Table:
    """Rows already in the lake keep the lake's decision."""
    known = lake.filter(pc.is_valid(lake.column("known_cluster"))) if "known_cluster" in lake.column_names else None
    if known is None or known.num_rows == 0:
        return DECISIONS_SCHEMA.empty_table()
    return pa.table({
        "shard": known.column("shard"), "row": known.column("row"),
        "dup_cluster": known.column("known_cluster"), "is_duplicate": known.column("known_duplicate"),
        "dup_similarity": known.column("known_similarity"), "dup_kind": known.column("known_kind"),
        "dup_containment": known.column("known_containment"),
    }, schema=DECISIONS_SCHEMA)

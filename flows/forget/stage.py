"""Staging a takedown: the rewritten documents files, the index segments that replace the touched ones, and
the block list and fingerprints it adds, each written under the takedown's staging folder at the path it
takes in the lake (the commit moves them there)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flows.dedup import DedupConfig, EntryChange, IndexRewrite, LakeIndex, rewrite_entries
from flows.forget.blocklist import BLOCKED, BLOCKED_SCHEMA, ENTRY_KINDS, FINGERPRINTS, FINGERPRINTS_SCHEMA
from flows.forget.lists import TakedownList
from flows.forget.plan import Plan
from flows.lake import INDEX, RunPaths, write_parquet_atomic
from flows.storage import Store

_DECISIONS = ("dup_cluster", "is_duplicate", "dup_similarity", "dup_kind", "dup_containment")


def stage_file(lake: Store, key: str, paths: RunPaths, plan: Plan) -> int:
    """Write documents file ``key`` less its removed rows, its changed rows updated, into staging at ``key``;
    return the rows it keeps. The file keeps its own schema (an older run's columns stay as they were)."""
    with lake.fs.open(lake.path(key), "rb") as handle:
        table = pq.read_table(handle)
    gone = pa.array(sorted(d for d, f in plan.removed.items() if f == key), pa.string())
    table = table.filter(pc.invert(pc.is_in(table.column("doc_id"), value_set=gone)))
    ids = table.column("doc_id").to_pylist()
    changed = [(row, plan.changes[d]) for row, d in enumerate(ids) if d in plan.changes]
    if changed:
        table = _apply(table, changed)
    write_parquet_atomic(table, paths.staging / key)
    return int(table.num_rows)


def _apply(table: pa.Table, changed: list[tuple[int, EntryChange]]) -> pa.Table:
    for name in _DECISIONS:
        if name not in table.column_names:
            continue
        values = table.column(name).to_pylist()
        for row, change in changed:
            values[row] = getattr(change, name)
        position = table.column_names.index(name)
        table = table.set_column(position, table.schema.field(name), pa.array(values, table.schema.field(name).type))
    return table


def stage_index(paths: RunPaths, index_dir: Path, config: DedupConfig | None, plan: Plan) -> IndexRewrite:
    """The segments replacing those that hold removed or changed entries (or removed entries' band rows);
    their moves and the replaced ones, relative to the lake."""
    if config is None:
        return IndexRewrite()
    result = rewrite_entries(index_dir, paths.staging / INDEX, paths.run_id, config, set(plan.removed), plan.changes)
    result.moves = [f"{INDEX}/{m}" for m in result.moves]
    result.replaced = [f"{INDEX}/{r}" for r in result.replaced]
    return result


def stage_blocked(paths: RunPaths, wanted: TakedownList, plan: Plan) -> str:
    """The entries this takedown blocks for good: the list's keys and the removed documents' doc_ids."""
    keys = sorted(wanted.keys)
    kinds = [ENTRY_KINDS[wanted.kind]] * len(keys)
    extra = sorted(set(plan.removed) - (set(keys) if wanted.kind == "doc_ids" else set()))
    table = pa.table({"kind": kinds + ["doc_id"] * len(extra), "key": keys + extra,
                      "forget_id": [paths.run_id] * (len(keys) + len(extra))}, schema=BLOCKED_SCHEMA)
    relative = f"{BLOCKED}/{paths.run_id}.parquet"
    write_parquet_atomic(table, paths.staging / relative)
    return relative


def stage_fingerprints(paths: RunPaths, index: LakeIndex | None, removed: Mapping[str, str]) -> tuple[str, int]:
    """The removed documents' fingerprints (``--with-copies``), from the index; their move and count."""
    if index is None or not removed:
        return "", 0
    ids = sorted(removed)
    found = index.kept_documents(ids)
    rows = np.flatnonzero(found.found)
    table = pa.table({"doc_id": [ids[r] for r in rows.tolist()],
                      "signature": [found.signatures[r].tobytes() for r in rows.tolist()],
                      "n_shingles": found.sizes[rows].astype(np.uint32),
                      "forget_id": [paths.run_id] * len(rows)}, schema=FINGERPRINTS_SCHEMA)
    relative = f"{FINGERPRINTS}/{paths.run_id}.parquet"
    write_parquet_atomic(table, paths.staging / relative)
    return relative, len(rows)

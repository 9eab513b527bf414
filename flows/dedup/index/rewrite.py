"""Taking entries out of the index (``siftlake forget``): the segments that hold them are replaced by one new
segment without them, in which the entries whose decision changed carry the new one.

Segments never change once published, so removal is a replacement, as in compaction: the new segment's
``meta.json`` names the segments it replaces (and their own ``replaces``), readers skip those from the
moment it is published, and a later compaction merges it like any other. A bucket lake's cache drops the
replaced segments and downloads the new one like a run's.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flows.dedup.config import DedupConfig
from flows.dedup.index.segment import KIND_CODES, Segment, check_params, doc_id_keys, live_segments
from flows.dedup.index.write import write_arrays


@dataclass(frozen=True)
class EntryChange:
    """The new decision of an entry that stays (its cluster's kept document was taken out)."""

    dup_cluster: str
    is_duplicate: bool
    dup_similarity: float
    dup_kind: str | None
    dup_containment: float


@dataclass
class IndexRewrite:
    """What ``rewrite_entries`` wrote: the new segment (None when no segment held an entry), the segments
    it replaces, and how many entries it left out and changed."""

    segment: Path | None = None
    replaced: list[str] = field(default_factory=list)
    removed: int = 0
    changed: int = 0


def index_config(index_dir: Path) -> DedupConfig | None:
    """The dedup parameters the index was built with (its newest live segment's), or None for no index."""
    live = live_segments(Path(index_dir))
    if not live:
        return None
    params = live[-1][1].get("index_params", {})
    return DedupConfig(**{k: v for k, v in params.items() if k in DedupConfig.model_fields})


def rewrite_entries(index_dir: Path, segment_dir: Path, config: DedupConfig, drop: Set[str],
                    changes: Mapping[str, EntryChange]) -> IndexRewrite:
    """Write into ``segment_dir`` (new or empty) one segment holding every entry of the live segments that
    hold an id of ``drop`` or ``changes``, less those of ``drop``, with ``changes`` applied.

    Memory is that of the replaced segments' entries (~1.2 KB each), as for compaction. Publish it by
    moving ``segment_dir`` to ``INDEX/segments/<its name>`` (the lake's commit does).
    """
    wanted = sorted(set(drop) | set(changes))
    keys = doc_id_keys(wanted)
    touched: list[tuple[Segment, dict[str, Any]]] = []
    for path, meta in live_segments(Path(index_dir)):
        check_params(path, meta, config)
        if int(meta["count"]) == 0:
            continue
        segment = Segment.load(path, meta)
        if (segment.find_ids(wanted, keys) >= 0).any():
            touched.append((segment, meta))
        segment.release()
    result = IndexRewrite()
    if not touched:
        return result
    parts = [_kept_part(segment, drop, changes, result) for segment, _ in touched]
    replaces = sorted({s.name for s, _ in touched} | {r for _, m in touched for r in m.get("replaces", [])})
    write_arrays(segment_dir, config, replaces=replaces,
                 **{name: _joined([p[name] for p in parts], name, config) for name in parts[0]})
    result.segment, result.replaced = segment_dir, [s.name for s, _ in touched]
    return result


def _kept_part(segment: Segment, drop: Set[str], changes: Mapping[str, EntryChange],
               result: IndexRewrite) -> dict[str, Any]:
    """One replaced segment's entries that stay, as the keyword arrays of ``write_arrays``."""
    ids = [d.decode("utf-8") for d in segment.doc_ids]
    keep = np.array([d not in drop for d in ids], dtype=bool)
    result.removed += int((~keep).sum())
    rows = np.flatnonzero(keep)
    part: dict[str, Any] = {
        "doc_ids": [ids[r] for r in rows.tolist()],
        "clusters": [segment.clusters[r].decode("utf-8") for r in rows.tolist()],
        "signatures": np.asarray(segment.signatures)[rows],
        "is_duplicate": np.array(segment.is_duplicate[rows], dtype=bool),
        "similarity": np.array(segment.similarity[rows], dtype=np.float32),
        "sizes": np.array(segment.sizes[rows], dtype=np.uint32),
        "hashes": np.array(segment.hashes[rows], dtype=np.uint64).reshape(-1, 2),
        "kinds": np.array(segment.kinds[rows], dtype=np.uint8),
        "containment": np.array(segment.containment[rows], dtype=np.float32),
    }
    for i, doc_id in enumerate(part["doc_ids"]):
        change = changes.get(doc_id)
        if change is None:
            continue
        part["clusters"][i] = change.dup_cluster
        part["is_duplicate"][i] = change.is_duplicate
        part["similarity"][i] = change.dup_similarity
        part["kinds"][i] = KIND_CODES.index(change.dup_kind)
        part["containment"][i] = change.dup_containment
        result.changed += 1
    segment.release()
    return part


def _joined(pieces: list[Any], name: str, config: DedupConfig) -> Any:
    if name in ("doc_ids", "clusters"):
        return [value for piece in pieces for value in piece]
    if name == "signatures":
        return np.concatenate(pieces).reshape(-1, config.num_perm).astype(np.uint32)
    return np.concatenate(pieces)


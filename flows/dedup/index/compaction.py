"""Merging index segments (compaction): the smallest live segments into one, re-banded to the config's.

It is size-tiered: ``compact`` merges the smallest live segments (up to a number of
entries) into one, published with the same single rename; its ``meta.json`` names the segments it
replaces, which readers then skip, so a crash at any point leaves a consistent index. Run it
between ingest runs (under the lake's lock), e.g. when there are more than ~32 segments: query
time grows linearly with their number (``flows.dedup.cache.compact_if_needed`` decides when).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from flows.dedup.config import DedupConfig
from flows.dedup.index.segment import Segment, check_params, live_segments
from flows.dedup.index.write import write_arrays
from flows.lake.layout import SEGMENTS


def segment_count(index_dir: Path) -> int:
    """Number of live segments: query time grows with it, so compact when it passes a few dozen."""
    return len(live_segments(Path(index_dir)))


def compact(index_dir: Path, config: DedupConfig, name: str, max_entries: int = 2_000_000) -> Path | None:
    """Merge the smallest live segments (at most ``max_entries`` entries in all) into segment ``name``.

    Size-tiered: repeated calls fold many small per-run segments into few large ones, and memory
    stays bounded by ``max_entries`` x ~(4 x num_perm + 12 x bands + 3 x id length) bytes
    (~1.2 GB for 1,000,000 entries with the defaults). Returns the new segment, or None when
    fewer than two segments fit. Run it between ingest runs: a segment published meanwhile is
    kept (it is not in ``replaces``), so nothing is lost, it is just not merged.

    The merged segment is format 2 with the config's banding, whatever the format and banding of
    the merged ones: band keys are recomputed from the stored signatures, and entries from format-1
    segments keep set size 0 and content hash 0 (unknown: never a container, never ``exact``),
    dup_kind null and dup_containment NaN, as they read before.
    """
    root = Path(index_dir) / SEGMENTS
    picked: list[tuple[Path, dict[str, Any]]] = []
    total = 0
    for path, meta in sorted(live_segments(Path(index_dir)), key=lambda pm: (int(pm[1]["count"]), pm[0].name)):
        check_params(path, meta, config)
        if total + int(meta["count"]) > max_entries:
            break
        picked.append((path, meta))
        total += int(meta["count"])
    if len(picked) < 2:
        return None
    segs = [Segment.load(p, m) for p, m in picked if int(m["count"]) > 0]
    # Inherit older replaced names too, so a leftover directory never comes back to life.
    replaces = sorted({p.name for p, _ in picked} | {r for _, m in picked for r in m.get("replaces", [])})
    tmp = root / f"_tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    write_arrays(
        tmp,
        config,
        doc_ids=[d.decode("utf-8") for s in segs for d in s.doc_ids],
        clusters=[c.decode("utf-8") for s in segs for c in s.clusters],
        signatures=np.concatenate([np.asarray(s.signatures) for s in segs]).reshape(-1, config.num_perm),
        is_duplicate=np.concatenate([np.asarray(s.is_duplicate) for s in segs]),
        similarity=np.concatenate([np.asarray(s.similarity) for s in segs]),
        sizes=np.concatenate([np.asarray(s.sizes) for s in segs]),
        hashes=np.concatenate([np.asarray(s.hashes) for s in segs]).reshape(-1, 2),
        kinds=np.concatenate([np.asarray(s.kinds) for s in segs]),
        containment=np.concatenate([np.asarray(s.containment) for s in segs]),
        replaces=replaces,
    )
    dest = root / name
    tmp.rename(dest)
    for old in replaces:
        shutil.rmtree(root / old, ignore_errors=True)
    return dest

"""Compaction: each partition's segments merged by themselves, in size tiers.

A segment's size is its entries plus band rows; its tier is ``floor(log4(size))``. When a partition holds
``TIER_SEGMENTS`` (4) segments of one tier (and one banding), they are merged into one, which lands a tier or
two higher; so a partition keeps fewer than 4 segments per tier, O(log(L / P)) in all, and each row is
rewritten O(log(L / P)) times over the lake's life. The merge streams (``flows.dedup.index.merge``): its
memory is one key range, not the merged segments, and there is no cap on a segment's size.

The merged segment is written under ``_tmp-<name>`` and published with one rename; its ``meta.json`` names
the segments it replaces (and any replaced folder a crash left behind), which readers skip from then on,
so a crash at any point leaves a consistent index. Run it between ingest runs, under the lake's lock
(``flows.dedup.maintenance.compact_if_needed``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flows.dedup.config import DedupConfig
from flows.dedup.index.layout import banding_of, check_index, live_partitions, partition_folders
from flows.dedup.index.merge import merge_part
from flows.dedup.index.part import PartSegment
from flows.dedup.index.segment import live_in, live_segments

TIER_BASE = 4
"""Sizes (entries + band rows) of one tier span a factor of 4."""
TIER_SEGMENTS = 4
"""A tier is merged once a partition holds this many segments in it."""


def tier_of(meta: dict[str, Any]) -> int:
    """The size tier of a segment: floor(log4(entries + band rows)), 0 for the smallest."""
    size, tier = int(meta["count"]) + int(meta["rows"]), 0
    while size >= TIER_BASE:
        size //= TIER_BASE
        tier += 1
    return tier


def segment_count(index_dir: Path) -> int:
    """Live segments in all: older-format ones plus every partition's."""
    return len(live_segments(Path(index_dir))) + sum(len(live_in(f)) for f in partition_folders(index_dir).values())


def segments_per_partition(index_dir: Path) -> dict[int, int]:
    """Live segments of each partition that has some: what a query of that partition searches."""
    return {p: n for p, f in partition_folders(index_dir).items() if (n := len(live_in(f)))}


def is_due(metas: Sequence[dict[str, Any]]) -> bool:
    """Whether a partition whose live segments have these ``meta.json`` holds a full size tier (of one banding)."""
    return bool(_due([(Path(), meta) for meta in metas]))


def _due(live: Sequence[tuple[Path, dict[str, Any]]]) -> list[tuple[Path, dict[str, Any]]]:
    """The segments to merge next in one partition: the lowest full tier of any banding, or none."""
    groups: dict[tuple[tuple[int, int], int], list[tuple[Path, dict[str, Any]]]] = {}
    for path, meta in live:
        groups.setdefault((banding_of(meta), tier_of(meta)), []).append((path, meta))
    full = [(tier, banding) for (banding, tier), members in groups.items() if len(members) >= TIER_SEGMENTS]
    if not full:
        return []
    tier, banding = min(full)
    return groups[(banding, tier)]


Published = Callable[[Path], None]
"""Called with a merged segment once it is in place, before the segments it replaces are deleted (a bucket
lake uploads it, then deletes those on the store)."""


def merge_segments(folder: Path, config: DedupConfig, picked: Sequence[tuple[Path, dict[str, Any]]],
                   name: str, published: Published | None = None) -> Path:
    """Merge the ``picked`` segments of one partition folder into segment ``name`` and publish it."""
    banded = config.model_copy(update=dict(zip(("bands", "rows"), banding_of(picked[0][1]), strict=True)))
    segments = [PartSegment.load(path, meta) for path, meta in picked]
    # Names a crash left behind stay replaced, so a leftover folder never comes back to life.
    replaces = {p.name for p, _ in picked} | {r for _, m in picked for r in m.get("replaces", [])
                                               if (folder / r).exists()}
    tmp = folder / f"_tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    merge_part(tmp, banded, segments, sorted(replaces))
    for segment in segments:
        segment.close()
    dest = folder / name
    tmp.rename(dest)
    if published is not None:
        published(dest)
    for old in replaces:
        shutil.rmtree(folder / old, ignore_errors=True)
    return dest


def compact_partition(folder: Path, config: DedupConfig, name: str, everything: bool = False,
                      published: Published | None = None) -> list[Path]:
    """Merge full tiers of one partition folder until none is left (``everything``: all its segments of the
    config's banding into one); return the merged segments (named ``name``, ``name-1``, ...)."""
    merged: list[Path] = []
    while True:
        live = live_in(folder)
        if everything:
            picked = [(p, m) for p, m in live if banding_of(m) == (config.bands, config.rows)]
            picked = picked if len(picked) > 1 and not merged else []
        else:
            picked = _due(live)
        if not picked:
            return merged
        merged.append(merge_segments(folder, config, picked, f"{name}-{len(merged)}" if merged else name, published))


def compact(index_dir: Path, config: DedupConfig, name: str, everything: bool = False,
            published: Published | None = None) -> list[Path]:
    """Compact every partition by size tiers (``everything``: each partition's segments into one); return the
    merged segments (a cascade's intermediate ones are gone again). Older-format segments are left to
    ``flows.dedup.index.migration``."""
    check_index(Path(index_dir), config)
    live_partitions(Path(index_dir), config)  # refuses an index of other parameters before writing anything
    merged: list[Path] = []
    for folder in partition_folders(Path(index_dir)).values():
        merged += compact_partition(folder, config, name, everything, published)
    return merged

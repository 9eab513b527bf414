"""Upkeep of the lake's index, under the lake's lock: compaction after each run (the partitions due, one at a
time), folding older-format segments into the partitions (a few after each run, or all at once: ``siftlake index
migrate``), and putting merged segments on a bucket lake."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from flows.dedup.cache import IndexListing, PartitionCache, local_index
from flows.dedup.config import DedupConfig
from flows.dedup.index import INDEX_FILE, compact, index_config, migrate, segment_count, segments_per_partition
from flows.dedup.index.compaction import compact_partition
from flows.dedup.index.layout import check_index, live_partitions, recorded_partitions
from flows.dedup.index.segment import live_segments
from flows.lake import lake_lock, recover
from flows.lake.layout import INDEX, SEGMENT_META, SEGMENTS
from flows.storage import Store


def migrate_index(lake_uri: str, partitions: int | None = None, lock_wait_s: float = 0.0,
                  cache_dir: str = "") -> dict[str, Any]:
    """Fold every older-format segment of the lake's index into the partitions (resuming an interrupted
    migration); return what was done. ``partitions`` applies to an index that does not record its own yet
    (default: ``DedupConfig``'s); one that does keeps it (asking for another is an ``IncompatibleIndexError``)."""
    lake = Store(lake_uri)
    lake.check_reachable()
    with lake_lock(lake, lock_wait_s):
        recover(lake)
        index_dir, _ = local_index(lake, cache_dir)
        config = index_config(index_dir)
        if config is None:
            return {"folded": [], "segments": 0, "note": "the lake has no near-duplicate index yet"}
        recorded = recorded_partitions(index_dir)
        wanted = partitions if partitions is not None else recorded if recorded is not None else config.partitions
        config = DedupConfig(**{**config.model_dump(), "partitions": wanted})
        check_index(index_dir, config)  # another number of partitions than recorded: refused, nothing written
        live_partitions(index_dir, config)
        start = time.perf_counter()
        folded = migrate_lake(lake, index_dir, config)
        return {"folded": folded, "partitions": config.partitions, "segments": segment_count(index_dir),
                "most_segments_in_a_partition": max(segments_per_partition(index_dir).values(), default=0),
                "seconds": round(time.perf_counter() - start, 3)}


MIGRATE_ENTRIES_PER_RUN = 1_000_000
"""Entries of older-format segments folded into the partitions after each run (at least one segment)."""


def _upload_segment(lake: Store, segment_dir: Path) -> None:
    """Put a segment written in this machine's cache on a bucket lake, ``meta.json`` last, then delete the
    segments it replaces in its partition (readers skip them from the moment the meta is there)."""
    partition = segment_dir.parent.name
    prefix = f"{INDEX}/{partition}/{segment_dir.name}"
    for path in sorted(segment_dir.iterdir(), key=lambda p: (p.name == SEGMENT_META, p.name)):
        lake.upload(path, f"{prefix}/{path.name}")
    for name in json.loads((segment_dir / SEGMENT_META).read_text()).get("replaces", []):
        lake.delete(f"{INDEX}/{partition}/{name}")


def _upload_migrated(lake: Store, index_dir: Path, copies: list[Path], legacy: str) -> None:
    """Put one folded legacy segment's copies on a bucket lake (``index.json`` first when it has none), then
    delete the legacy segment there, its ``meta.json`` first (so no reader takes the rest for a segment)."""
    if not lake.exists(f"{INDEX}/{INDEX_FILE}"):
        lake.upload(index_dir / INDEX_FILE, f"{INDEX}/{INDEX_FILE}")
    for copy in copies:
        if not lake.exists(f"{INDEX}/{copy.parent.name}/{copy.name}/{SEGMENT_META}"):
            _upload_segment(lake, copy)
    lake.delete(f"{INDEX}/{SEGMENTS}/{legacy}/{SEGMENT_META}")
    lake.delete(f"{INDEX}/{SEGMENTS}/{legacy}")


def migrate_lake(lake: Store, index_dir: Path, config: DedupConfig, max_entries: int | None = None) -> list[str]:
    """Fold older-format segments into the partitions (``flows.dedup.index.migration``); a bucket lake's are
    folded in this machine's cache and put on the store. Returns the names folded."""
    if not live_segments(index_dir):
        return []
    if not lake.remote:
        return migrate(index_dir, config, max_entries)
    return migrate(index_dir, config, max_entries, lambda copies, legacy: _upload_migrated(lake, index_dir, copies,
                                                                                          legacy))


def compact_if_needed(lake: Store, index_dir: Path, config: DedupConfig, run_id: str) -> str | None:
    """Fold some older-format segments into the partitions, then merge each partition's full size tiers; runs
    under the lake lock, between runs. Returns a summary of what was done, or None when nothing was.

    A bucket lake's segments are merged in this machine's cache, then each merged one is put on the store.
    """
    folded = migrate_lake(lake, index_dir, config, MIGRATE_ENTRIES_PER_RUN)
    upload = (lambda segment: _upload_segment(lake, segment)) if lake.remote else None
    merged = compact(index_dir, config, f"compact-{run_id}", published=upload)
    if not folded and not merged:
        return None
    parts = [f"folded {len(folded)} older-format segment(s) into the partitions"] if folded else []
    if merged:
        parts.append(f"merged segments into {len(merged)} in {len({m.parent.name for m in merged})} partition(s)")
    return "; ".join(parts)


def compact_after_run(lake: Store, listing: IndexListing, added: dict[int, dict[str, Any]], config: DedupConfig,
                      run_id: str, cache: PartitionCache) -> str | None:
    """Compact the index after a run, under the lake lock: the partitions with a full size tier once the run's
    segments ``added`` are in (``IndexListing.due``), one at a time, each brought into this machine's cache alone
    (a bucket lake's merged segment is put on the store). A lake with older-format segments is folded and
    compacted whole (``compact_if_needed``). Returns a summary, or None when nothing was done."""
    if listing.legacy:
        index_dir, _ = local_index(lake, cache.cache_dir, cache.max_bytes)
        return compact_if_needed(lake, index_dir, config, run_id)
    upload = (lambda segment: _upload_segment(lake, segment)) if lake.remote else None
    merged: list[Path] = []
    for part in listing.due(added):
        with cache.held(part, writing=True) as folder:
            merged += compact_partition(folder, config, f"compact-{run_id}", published=upload)
    if not merged:
        return None
    return f"merged segments into {len(merged)} in {len({m.parent.name for m in merged})} partition(s)"

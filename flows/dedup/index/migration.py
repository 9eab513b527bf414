"""Folding segments of the older formats (``INDEX/segments/<name>``, formats 1 and 2) into the partitions.

A legacy segment ``L`` becomes segment ``legacy-L`` of each partition that gets rows (band keys recomputed
with the config's banding, entries as they were: a format-1 entry keeps set size 0 and content hash 0, so it
is never a container nor ``exact``, as before). They are written under ``INDEX/_tmp-migrate-L``, renamed
into place one partition at a time, and ``L`` is removed only once all of them are there. Until then a reader
sees ``L`` and some of its copies: the same entries twice, which changes no answer (same signature, same
decision). An interrupted migration resumes: ``L`` is still there, and its missing copies are written
(``finish_migrations``; every index writer calls it first, so nothing else ever merges a partial copy).

A lake is migrated bit by bit by compaction after each run (``flows.dedup.maintenance.compact_if_needed``), or
all at once with ``migrate`` (``siftlake index migrate --lake LAKE``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from flows.dedup.config import DedupConfig
from flows.dedup.index.layout import INDEX_FILE, check_index, partition_folders, partition_name, write_index_file
from flows.dedup.index.merge import EntryChange
from flows.dedup.index.segment import KIND_CODES, Segment, check_params, live_in, live_segments
from flows.dedup.index.write import Entries, write_partitioned
from flows.lake.layout import SEGMENTS

COPY_PREFIX = "legacy-"
"""A legacy segment ``L`` folded into the partitions is segment ``legacy-L`` there."""

Published = Callable[[list[Path], str], None]
"""Called with the partition segments of one migrated legacy segment once they are in place, before that
segment is removed (a bucket lake uploads them, then deletes it on the store)."""


class LegacyEntries:
    """A legacy segment's entries (some rows, some decisions changed) as the partitioned writer reads them."""

    def __init__(self, segment: Segment, rows: np.ndarray | None = None,
                 changes: Mapping[int, EntryChange] | None = None) -> None:
        self.segment = segment
        self.rows = np.arange(segment.count) if rows is None else np.asarray(rows, dtype=np.int64)
        self.changes = dict(changes or {})

    def __len__(self) -> int:
        return len(self.rows)

    def id_keys(self) -> np.ndarray:
        by_row = np.empty(self.segment.count, dtype=np.uint64)
        by_row[np.asarray(self.segment.id_rows, dtype=np.int64)] = self.segment.id_keys
        self.segment.release()
        return by_row[self.rows]

    def signature_rows(self, start: int, stop: int) -> np.ndarray:
        picked = self.rows[start:stop]
        out = np.array(self.segment.signatures[picked]) if len(picked) else np.empty((0, self.segment.num_perm),
                                                                                    np.uint32)
        self.segment.release()
        return out

    def take(self, rows: np.ndarray) -> Entries:
        picked = self.rows[rows]
        arrays = {name: np.array(self.segment.arrays[name][picked]) for name in Entries.__dataclass_fields__}
        self.segment.release()
        entries = Entries(**arrays)
        for i, row in enumerate(picked.tolist()):
            if (change := self.changes.get(row)) is not None:
                entries.clusters = entries.clusters.astype(
                    f"S{max(entries.clusters.dtype.itemsize, len(change.dup_cluster.encode('utf-8')))}")
                entries.clusters[i] = change.dup_cluster.encode("utf-8")
                entries.is_duplicate[i], entries.similarity[i] = change.is_duplicate, change.dup_similarity
                entries.kinds[i], entries.containment[i] = KIND_CODES.index(change.dup_kind), change.dup_containment
        return entries


def copies_of(index_dir: Path, legacy: str) -> dict[int, Path]:
    """The partition segments a (maybe interrupted) migration of legacy segment ``legacy`` has published."""
    name = COPY_PREFIX + legacy
    return {p: folder / name for p, folder in partition_folders(index_dir).items() if (folder / name).is_dir()}


def _remove_legacy(index_dir: Path, path: Path, meta: dict[str, Any]) -> None:
    # Its own leftovers first (replaced by it, so they would come back to life without it), then itself,
    # renamed out of readers' sight before the tree goes.
    for old in meta.get("replaces", []):
        shutil.rmtree(path.parent / old, ignore_errors=True)
    gone = path.with_name(f"_gone-{path.name}")
    shutil.rmtree(gone, ignore_errors=True)
    path.rename(gone)
    shutil.rmtree(gone, ignore_errors=True)


def migrate_segment(index_dir: Path, config: DedupConfig, path: Path, meta: dict[str, Any],
                    published: Published | None = None) -> list[Path]:
    """Fold legacy segment ``path`` into the partitions (resuming an interrupted attempt), then remove it;
    return its partition segments."""
    check_params(path, meta, config)
    if not (index_dir / INDEX_FILE).is_file():
        write_index_file(index_dir, config)  # before any format-3 segment: it fixes the partitions
    name = COPY_PREFIX + path.name
    scratch = index_dir / f"_tmp-migrate-{path.name}"
    shutil.rmtree(scratch, ignore_errors=True)
    done = copies_of(index_dir, path.name)
    segment = Segment.load(path, meta) if int(meta["count"]) else None
    placed = list(done.values())
    if segment is not None:
        written = write_partitioned(scratch, name, config, LegacyEntries(segment), {"migrated_from": path.name})
        for partition in written:
            if partition not in done:
                dest = index_dir / partition_name(partition) / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                (scratch / partition_name(partition) / name).rename(dest)
                placed.append(dest)
        segment.close()
    shutil.rmtree(scratch, ignore_errors=True)
    if published is not None:
        published(placed, path.name)
    _remove_legacy(index_dir, path, meta)
    return placed


def finish_migrations(index_dir: Path, config: DedupConfig, published: Published | None = None) -> list[str]:
    """Finish every interrupted migration (a legacy segment with some copies in the partitions)."""
    done = []
    for path, meta in live_segments(Path(index_dir)):
        if copies_of(Path(index_dir), path.name):
            migrate_segment(Path(index_dir), config, path, meta, published)
            done.append(path.name)
    return done


def migrate(index_dir: Path, config: DedupConfig, max_entries: int | None = None,
            published: Published | None = None) -> list[str]:
    """Fold the legacy segments into the partitions, smallest first: all of them, or (``max_entries``) as many
    as fit in that many entries, at least one. Returns the names folded (interrupted ones finished first)."""
    index_dir = Path(index_dir)
    check_index(index_dir, config)
    done = finish_migrations(index_dir, config, published)
    total = 0
    for path, meta in sorted(live_segments(index_dir), key=lambda pm: (int(pm[1]["count"]), pm[0].name)):
        if max_entries is not None and done and total + int(meta["count"]) > max_entries:
            break
        migrate_segment(index_dir, config, path, meta, published)
        done.append(path.name)
        total += int(meta["count"])
    if not live_in(index_dir / SEGMENTS) and (index_dir / SEGMENTS).is_dir():
        shutil.rmtree(index_dir / SEGMENTS, ignore_errors=True)  # only leftovers remain there
    return done

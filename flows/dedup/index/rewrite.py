"""Taking entries out of the index (``siftlake forget``): the segments that hold them, or their band rows, are
replaced by new segments without them, in which the entries whose decision changed carry the new one.

Segments never change once published, so removal is a replacement, as in compaction: in each partition
touched, one new segment (the takedown's id) merges the touched segments less the removed entries and less
their band rows (found by recomputing the removed entries' band keys), and its ``meta.json`` names the
segments it replaces. An older-format segment holding an entry is folded into the partitions the same way
(``flows.dedup.index.migration``), less the removed entries. The takedown's commit moves the new segments in
and deletes the replaced ones. A band row whose entry is gone yields no candidate in any case (the query
finds no entry for its ref), so what is left is never matched.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flows.dedup.config import DedupConfig
from flows.dedup.fingerprint import band_keys
from flows.dedup.index.files import doc_id_keys, ranges
from flows.dedup.index.lake_index import LakeIndex
from flows.dedup.index.layout import (
    INDEX_FILE,
    partition_folders,
    partition_name,
    partition_of,
    read_index_file,
    write_index_file,
)
from flows.dedup.index.merge import EntryChange, SegmentEdit, merge_part
from flows.dedup.index.migration import LegacyEntries
from flows.dedup.index.part import PartSegment
from flows.dedup.index.segment import Segment, live_in, live_segments
from flows.dedup.index.write import write_partitioned
from flows.lake.layout import SEGMENT_META, SEGMENTS


@dataclass
class IndexRewrite:
    """What ``rewrite_entries`` wrote: the folders to move into the index (relative to it: ``index.json``
    first for a new index, then ``pNNNN/<name>``), the ones they replace (to delete after), and how many
    entries it left out and changed."""

    moves: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: int = 0
    changed: int = 0


def index_config(index_dir: Path) -> DedupConfig | None:
    """The dedup parameters the index was built with (``index.json``, else a segment's ``meta.json``), or None
    for no index."""
    info = read_index_file(Path(index_dir))
    if info is None:
        metas = [m for folder in partition_folders(Path(index_dir)).values() for _, m in live_in(folder)[:1]]
        metas += [m for _, m in live_segments(Path(index_dir))[-1:]]
        if not metas:
            return None
        info = {"index_params": metas[0].get("index_params", {}), "partitions": metas[0].get("partitions")}
    params = {**info["index_params"], "partitions": info["partitions"]}
    return DedupConfig(**{k: v for k, v in params.items() if k in DedupConfig.model_fields and v is not None})


def rewrite_entries(index_dir: Path, root: Path, name: str, config: DedupConfig, drop: Set[str],
                    changes: Mapping[str, EntryChange]) -> IndexRewrite:
    """Write under ``root`` (laid out like the index) segment ``name`` of each partition that held an id of
    ``drop`` or ``changes`` or a band row of a dropped one: those segments merged, less the ``drop`` entries
    and their band rows, with ``changes`` applied. Memory is one key range of the merge, not the segments."""
    index = LakeIndex.open(index_dir, config)
    wanted = sorted(set(drop) | set(changes))
    seg, row = index.locate(wanted)
    result = IndexRewrite()
    edits: dict[int, SegmentEdit] = {}
    dropped: list[tuple[int, int, str]] = []  # (segment, row, doc_id) of removed partition entries
    for i in np.flatnonzero(seg >= 0).tolist():
        doc, s, r = wanted[i], int(seg[i]), int(row[i])
        edit = edits.setdefault(s, SegmentEdit())
        if doc in drop:
            result.removed += 1
            edit.drop_entries = np.append(edit.drop_entries, r)
            if isinstance(index.segments[s], PartSegment):
                dropped.append((s, r, doc))
        else:
            result.changed += 1
            edit.changes[r] = changes[doc]
    _drop_band_rows(index, dropped, edits)
    if not edits:
        return result
    if not index.has_index_file:
        write_index_file(Path(root), config)
        result.moves.append(INDEX_FILE)
    _write_replacements(index, Path(root), name, edits, result)
    return result


def _drop_band_rows(index: LakeIndex, dropped: list[tuple[int, int, str]], edits: dict[int, SegmentEdit]) -> None:
    """Add the band rows of the removed entries to the edits of the segments that hold them."""
    if not dropped:
        return
    sigs = np.concatenate([index.segments[s].read_signatures(np.array([r])) for s, r, _ in dropped])
    refs = doc_id_keys([doc for _, _, doc in dropped])
    for banding in sorted({s.banding for s in index.segments if isinstance(s, PartSegment) and s.rows}):
        keys = band_keys(sigs, index.config.model_copy(update={"bands": banding[0], "rows": banding[1]})).reshape(-1)
        order = np.argsort(keys)
        needles, owner = keys[order], order % len(dropped)
        home = partition_of(needles, index.config.partitions)
        for number, segment in enumerate(index.segments):
            if not isinstance(segment, PartSegment) or segment.banding != banding or not segment.rows:
                continue
            mine = np.flatnonzero(home == segment.partition)
            lo, count = segment.band_ranges(needles[mine])
            which, positions = ranges(lo, count)
            hit = positions[np.asarray(segment.refs[positions]) == refs[owner[mine][which]]]
            segment.release()
            if len(hit):
                edit = edits.setdefault(number, SegmentEdit())
                edit.drop_rows = np.union1d(edit.drop_rows, hit)


def _write_replacements(index: LakeIndex, root: Path, name: str, edits: dict[int, SegmentEdit],
                        result: IndexRewrite) -> None:
    """One new segment per (partition, banding) touched: the touched segments there merged with the edits,
    plus the touched older-format segments folded in."""
    config = index.config
    inputs: dict[tuple[int, tuple[int, int]], list[tuple[PartSegment, SegmentEdit, str]]] = {}
    scratch = root / f"_tmp-{name}"
    folded = {index.segments[n].name for n in edits if isinstance(index.segments[n], Segment)}
    for number, edit in sorted(edits.items()):
        segment = index.segments[number]
        if isinstance(segment, Segment):
            _fold_legacy(index, segment, edit, scratch, inputs, result)
            continue
        if segment.meta.get("migrated_from") in folded:
            continue  # a copy of a folded segment: replaced as a whole (_fold_legacy)
        edit.drop_entries = np.unique(edit.drop_entries)
        inputs.setdefault((segment.partition, segment.banding), []).append((segment, edit, segment.name))
        result.replaced.append(f"{partition_name(segment.partition)}/{segment.name}")
    for (partition, banding), members in sorted(inputs.items()):
        own = banding == (config.bands, config.rows)
        out = name if own else f"{name}-{banding[0]}x{banding[1]}"
        banded = config.model_copy(update={"bands": banding[0], "rows": banding[1]})
        merge_part(root / partition_name(partition) / out, banded, [m[0] for m in members],
                   [m[2] for m in members if m[2]], [m[1] for m in members])
        result.moves.append(f"{partition_name(partition)}/{out}")
    shutil.rmtree(scratch, ignore_errors=True)


def _fold_legacy(index: LakeIndex, segment: Segment, edit: SegmentEdit, scratch: Path,
                 inputs: dict[tuple[int, tuple[int, int]], list[tuple[PartSegment, SegmentEdit, str]]],
                 result: IndexRewrite) -> None:
    """Write an older-format segment's remaining entries into ``scratch``'s partitions, as merge inputs; it and
    any partial copy of it (an interrupted migration) are replaced."""
    name = f"from-{segment.name}"
    rows = np.setdiff1d(np.arange(segment.count), edit.drop_entries)
    written = write_partitioned(scratch, name, index.config, LegacyEntries(segment, rows, edit.changes))
    banding = (index.config.bands, index.config.rows)
    for partition in written:
        path = scratch / partition_name(partition) / name
        part = PartSegment.load(path, json.loads((path / SEGMENT_META).read_text()))
        inputs.setdefault((partition, banding), []).append((part, SegmentEdit(), ""))
    result.replaced.append(f"{SEGMENTS}/{segment.name}")
    result.replaced += [f"{partition_name(s.partition)}/{s.name}" for s in index.segments
                        if isinstance(s, PartSegment) and s.meta.get("migrated_from") == segment.name]

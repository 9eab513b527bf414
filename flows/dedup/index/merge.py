"""Merging format-3 segments of one partition into one, streamed: compaction, and ``forget``'s rewrite (which
leaves some band rows and entries out and changes some decisions).

Both kinds of rows are sorted in every input (band rows by (key, ref), entries by doc-id key), so the merge
goes a key range at a time: each input's rows in the range are one contiguous slice, the slices are sorted
together and appended to the output files. Memory is one range (~1M band rows, ~32K entries), not the
merged segments; nothing is mapped but for the searches of a range's bounds (``Column``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from flows.dedup.config import DedupConfig
from flows.dedup.index import band_lookup
from flows.dedup.index.column import Column
from flows.dedup.index.files import npy_writer
from flows.dedup.index.part import PART_ARRAYS, PartSegment
from flows.dedup.index.segment import KIND_CODES
from flows.dedup.index.write import sort_rows, write_meta

# Rows per merged range: ~16 MB of band keys and refs; ~16 MB of signatures for entries.
_BAND_ROWS_AT_ONCE = 1 << 20
_ENTRIES_AT_ONCE = 1 << 15


@dataclass(frozen=True)
class EntryChange:
    """The new decision of an entry that stays (its cluster's kept document was taken out)."""

    dup_cluster: str
    is_duplicate: bool
    dup_similarity: float
    dup_kind: str | None
    dup_containment: float


@dataclass
class SegmentEdit:
    """What a merge leaves out of one input segment and changes in it, by position."""

    drop_rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    """Sorted band-row positions left out (the rows of removed entries)."""
    drop_entries: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    """Sorted entry rows left out."""
    changes: dict[int, EntryChange] = field(default_factory=dict)
    """Entry row -> its new decision."""


def key_chunks(columns: Sequence[Column], target: int) -> Iterator[list[tuple[int, int]]]:
    """Row ranges ``[lo, hi)`` of each sorted column, one key range at a time in ascending order, each range
    ~``target`` rows in all; a run of equal keys is never split."""
    if sum(len(c) for c in columns) == 0:
        return
    # Every step-th key of each input, sorted: between every k-th of these samples lie at most ~2k steps.
    step = max(1, target // (2 * len(columns)))
    samples = np.sort(np.concatenate([c.sample(step) for c in columns]))
    bounds = np.unique(samples[len(columns) - 1 :: len(columns)])
    positions = [np.r_[0, c.positions(bounds), len(c)] for c in columns]
    for j in range(len(bounds) + 1):
        spans = [(int(p[j]), int(p[j + 1])) for p in positions]
        if any(hi > lo for lo, hi in spans):
            yield spans


def _kept(span: tuple[int, int], dropped: np.ndarray) -> np.ndarray:
    """Positions ``lo..hi`` minus the ``dropped`` ones (sorted), relative to ``lo``."""
    lo, hi = span
    gone = dropped[np.searchsorted(dropped, lo) : np.searchsorted(dropped, hi)] - lo
    keep = np.ones(hi - lo, dtype=bool)
    keep[gone] = False
    return np.flatnonzero(keep)


def merge_part(segment_dir: Path, config: DedupConfig, segments: Sequence[PartSegment], replaces: Sequence[str],
               edits: Sequence[SegmentEdit] | None = None) -> tuple[int, int]:
    """Write ``segments`` (one partition, one banding: ``config``'s) merged into ``segment_dir`` (new or empty),
    less the rows ``edits`` drop and with their changes, ``meta.json`` last; return its entries and band rows."""
    edits = edits or [SegmentEdit() for _ in segments]
    segment_dir.mkdir(parents=True, exist_ok=True)
    if any(segment_dir.iterdir()):
        raise FileExistsError(f"segment directory {segment_dir} is not empty")
    count = sum(s.count - len(e.drop_entries) for s, e in zip(segments, edits, strict=True))
    rows = sum(s.rows - len(e.drop_rows) for s, e in zip(segments, edits, strict=True))
    dtypes = _output_dtypes(segments, edits)
    files = {name: npy_writer(segment_dir / f"{name}.npy", dtype, _shape(name, config, count, rows))
             for name, dtype in dtypes.items()}
    keys_filter = np.zeros(band_lookup.filter_words(rows), dtype=np.uint64)
    try:
        fence = _merge_band_rows(segments, edits, files, keys_filter)
        _merge_entries(segments, edits, files, dtypes)
    finally:
        for handle in files.values():
            handle.close()
    extra: dict[str, Any] = {"replaces": sorted(replaces)}
    if rows:
        np.save(segment_dir / f"{band_lookup.FILTER_FILE}.npy", keys_filter, allow_pickle=False)
        np.save(segment_dir / f"{band_lookup.FENCE_FILE}.npy", fence, allow_pickle=False)
        extra[band_lookup.META_KEY] = band_lookup.META
    write_meta(segment_dir, config, segments[0].partition, count, rows, extra)
    return count, rows


def _output_dtypes(segments: Sequence[PartSegment], edits: Sequence[SegmentEdit]) -> dict[str, np.dtype[Any]]:
    """Each output array's dtype: the inputs', strings as wide as the widest input (or changed cluster)."""
    widths = {"doc_ids": max(s.doc_ids.dtype.itemsize for s in segments),
              "clusters": max([s.clusters.dtype.itemsize for s in segments] +
                              [len(c.dup_cluster.encode("utf-8")) for e in edits for c in e.changes.values()])}
    return {name: np.dtype(f"S{max(widths[name], 1)}") if name in widths else segments[0].arrays[name].dtype
            for name in PART_ARRAYS}


def _shape(name: str, config: DedupConfig, count: int, rows: int) -> tuple[int, ...]:
    if name in ("keys", "refs"):
        return (rows,)
    return (count, config.num_perm) if name == "signatures" else (count, 2) if name == "hashes" else (count,)


def _merge_band_rows(segments: Sequence[PartSegment], edits: Sequence[SegmentEdit],
                     files: Mapping[str, BinaryIO], keys_filter: np.ndarray) -> np.ndarray:
    """Write the merged band rows, a key range at a time, adding the keys to ``keys_filter``; return the fence."""
    fence, written = [np.empty(0, np.uint64)], 0
    for spans in key_chunks([s.keys for s in segments], _BAND_ROWS_AT_ONCE):
        keys, refs = [], []
        for segment, edit, (lo, hi) in zip(segments, edits, spans, strict=True):
            keep = _kept((lo, hi), edit.drop_rows)
            keys.append(segment.keys.range(lo, hi)[keep])
            refs.append(segment.refs.range(lo, hi)[keep])
        all_keys, all_refs = np.concatenate(keys), np.concatenate(refs)
        order = sort_rows(all_keys, all_refs)
        files["keys"].write(all_keys[order].tobytes())
        files["refs"].write(all_refs[order].tobytes())
        band_lookup.add(keys_filter, all_keys)
        fence.append(band_lookup.fence_of(all_keys[order], written))
        written += len(order)
    return np.concatenate(fence)


def _merge_entries(segments: Sequence[PartSegment], edits: Sequence[SegmentEdit], files: Mapping[str, BinaryIO],
                   dtypes: Mapping[str, np.dtype[Any]]) -> None:
    names = PART_ARRAYS[2:]  # id_keys, then the entry arrays
    for spans in key_chunks([s.id_keys for s in segments], _ENTRIES_AT_ONCE):
        parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for segment, edit, (lo, hi) in zip(segments, edits, spans, strict=True):
            keep = _kept((lo, hi), edit.drop_entries)
            piece = {name: segment.arrays[name].range(lo, hi)[keep] for name in names}
            _apply_changes(piece, edit.changes, lo + keep)
            for name in names:
                parts[name].append(piece[name])
        merged = {name: np.concatenate(parts[name]) for name in names}
        order = np.argsort(merged["id_keys"], kind="stable")
        for name in names:
            files[name].write(merged[name][order].astype(dtypes[name], copy=False).tobytes())


def _apply_changes(piece: dict[str, np.ndarray], changes: Mapping[int, EntryChange], rows: np.ndarray) -> None:
    """Set the new decisions of the changed entries among ``rows`` (their positions in the input)."""
    if not changes:
        return
    for i, row in enumerate(rows.tolist()):
        change = changes.get(row)
        if change is None:
            continue
        clusters = piece["clusters"]
        width = max(clusters.dtype.itemsize, len(change.dup_cluster.encode("utf-8")))
        piece["clusters"] = clusters = clusters.astype(f"S{width}")
        clusters[i] = change.dup_cluster.encode("utf-8")
        piece["is_duplicate"][i] = change.is_duplicate
        piece["similarity"][i] = change.dup_similarity
        piece["kinds"][i] = KIND_CODES.index(change.dup_kind)
        piece["containment"][i] = change.dup_containment

"""Segments of the index's older formats (1 and 2), read as they are: their files and layout, opening one
as memory-mapped arrays, looking entries up in it, listing the live ones and checking they fit a config.

Layout (``INDEX = LAKE/_index``; a lake indexed before the partitioned format 3, see ``flows.dedup.index.layout``)::

    INDEX/segments/<name>/meta.json         format, index parameters, entry count, replaced segments
    INDEX/segments/<name>/signatures.npy     (n, num_perm) uint32 MinHash values, row = entry
    INDEX/segments/<name>/band_keys.npy      (bands, n) uint64, each band sorted ascending
    INDEX/segments/<name>/band_rows.npy      (bands, n) uint32, entry row of each sorted key
    INDEX/segments/<name>/id_keys.npy        (n,) uint64 xxh3_64(doc_id), sorted
    INDEX/segments/<name>/id_rows.npy        (n,) uint32, entry row of each sorted id key
    INDEX/segments/<name>/doc_ids.npy        (n,) bytes, the entries' doc_id (UTF-8)
    INDEX/segments/<name>/clusters.npy       (n,) bytes, their dup_cluster
    INDEX/segments/<name>/is_duplicate.npy   (n,) bool
    INDEX/segments/<name>/similarity.npy     (n,) float32, their dup_similarity
    INDEX/segments/<name>/sizes.npy          (n,) uint32, distinct shingles of each entry (format 2)
    INDEX/segments/<name>/hashes.npy         (n, 2) uint64, their content_hash (format 2)
    INDEX/segments/<name>/kinds.npy          (n,) uint8, their dup_kind: 0 none, 1 exact, 2 near, 3 contained
    INDEX/segments/<name>/containment.npy    (n,) float32, their dup_containment

Directories whose name starts with ``.`` or ``_`` (``_tmp...``) are ignored; a segment is live unless
a later segment's ``meta.json`` names it in ``replaces`` (compaction of that time).

These segments are queried as they were (``candidates``, one band at a time) until compaction folds them
into the partitions (``flows.dedup.index.migration``). Format 1 segments (before containment dedup; no
``sizes``, ``hashes``, ``kinds``, ``containment``) are each queried with the banding in their own
``meta.json`` (format 1 lakes have the then default 32 x 4). Their entries are matched as near and
exact-signature duplicates only: without set sizes nothing is found contained in them, and without
content hashes a copy of one is ``near`` (similarity 1.0), not ``exact``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flows.dedup.config import DedupConfig
from flows.dedup.index.files import CorruptIndexError, IncompatibleIndexError, Mapped, map_npy, open_signatures
from flows.dedup.records import DUP_KINDS
from flows.lake.layout import SEGMENT_META, SEGMENTS

LEGACY_FORMATS = (1, 2)
"""Formats of the segments under ``INDEX/segments``: 1 (before containment dedup) and 2 (set sizes, content
hashes, dup_kind and dup_containment per entry)."""
_FORMAT_2_ARRAYS = ("sizes", "hashes", "kinds", "containment")
BANDING = ("bands", "rows")
"""Index parameters a segment may differ in from the run's config: queried with its own banding."""
KIND_CODES = (None, *DUP_KINDS)
"""``kinds.npy`` stores the position of an entry's dup_kind in this tuple (0: kept, no kind)."""
ENTRY_ARRAYS = ("signatures", "doc_ids", "clusters", "is_duplicate", "similarity", "sizes", "hashes", "kinds",
                "containment")
"""The arrays that describe an entry, row by row, in every format."""


_UNKNOWN: dict[str, tuple[tuple[int, ...], type[np.generic], float]] = {
    "sizes": ((), np.uint32, 0), "hashes": ((2,), np.uint64, 0), "kinds": ((), np.uint8, 0),
    "containment": ((), np.float32, np.nan),
}


def _unknown(name: str, n: int) -> np.ndarray:
    """What a format-1 segment lacks, as read-only stride-0 views (no memory): set size 0 (unknown, so
    never a container), content hash 0 (unknown, so never ``exact``), dup_kind null, dup_containment NaN."""
    tail, dtype, fill = _UNKNOWN[name]
    one: np.ndarray = np.full((1, *tail), fill, dtype=dtype)
    return np.broadcast_to(one, (n, *tail))


@dataclass
class Segment(Mapped):
    """One published format 1 or 2 segment opened read-only: its arrays memory-mapped (format-1 gaps filled
    with stride-0 stand-ins) and its ``meta.json``."""

    name: str
    meta: dict[str, Any]

    @property
    def band_keys(self) -> np.ndarray:
        return self.arrays["band_keys"]

    @property
    def band_rows(self) -> np.ndarray:
        return self.arrays["band_rows"]

    @property
    def id_rows(self) -> np.ndarray:
        return self.arrays["id_rows"]

    @property
    def count(self) -> int:
        return int(self.meta["count"])

    @property
    def banding(self) -> tuple[int, int]:
        """``(bands, rows)`` its band keys were built with (older lakes: 32 x 4, the defaults then)."""
        params = self.meta["index_params"]
        return int(params["bands"]), int(params["rows"])

    @property
    def has_sizes(self) -> bool:
        """Format 2 or later: entries may be containers (a compacted format-1 entry has size 0, never one)."""
        return int(self.meta["format"]) >= 2

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> Segment:
        maps: list[Any] = []
        n = int(meta["count"])
        names = ("signatures", "band_keys", "band_rows", "id_keys", "id_rows", *ENTRY_ARRAYS[1:])
        try:
            arrays = {name: _unknown(name, n) if name in _FORMAT_2_ARRAYS and int(meta["format"]) < 2
                      else map_npy(path / f"{name}.npy", maps) for name in names}
            handle, offset = open_signatures(path / "signatures.npy")
            segment = cls(maps, handle, offset, int(meta["index_params"]["num_perm"]), arrays, path.name, meta)
            segment.check_shapes()
            return segment
        except (OSError, ValueError) as exc:
            raise CorruptIndexError(
                f"index segment {path} is unreadable ({exc}); move it out of "
                f"{path.parent} and re-ingest the run that wrote it"
            ) from exc

    def check_shapes(self) -> None:
        """Raise ValueError unless the arrays agree with meta.json (a truncated copy, say)."""
        n, bands = self.count, self.banding[0]
        expected = {"signatures": (n, self.num_perm), "band_keys": (bands, n), "band_rows": (bands, n),
                    "hashes": (n, 2)}
        for name, array in self.arrays.items():
            shape = expected.get(name, (n,))
            if array.shape != shape:
                raise ValueError(f"{name}.npy has shape {array.shape}, expected {shape}")

    def find_ids(self, doc_ids: Sequence[str], keys: np.ndarray) -> np.ndarray:
        """Entry row of each doc_id in this segment, -1 where absent."""
        rows = np.full(len(doc_ids), -1, dtype=np.int64)
        if self.count == 0 or len(doc_ids) == 0:
            return rows
        pos = np.searchsorted(self.id_keys, keys)
        hit = np.flatnonzero(pos < self.count)
        hit = hit[np.asarray(self.id_keys[pos[hit]]) == keys[hit]]
        for i in hit.tolist():
            # Walk the run of equal 64-bit keys (length 1 unless xxh3 collides) comparing real ids.
            p = int(pos[i])
            while p < self.count and self.id_keys[p] == keys[i]:
                row = int(self.id_rows[p])
                if self.doc_ids[row].decode("utf-8") == doc_ids[i]:
                    rows[i] = row
                    break
                p += 1
        return rows

    def candidates(self, qkeys: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
        """``(query row, entry row)`` pairs sharing a band key, at most ``cap`` per band, each pair once."""
        qs, rs = [], []
        for band in range(qkeys.shape[0]):
            keys = self.band_keys[band]
            lo = np.searchsorted(keys, qkeys[band], side="left")
            hi = np.searchsorted(keys, qkeys[band], side="right")
            counts = np.minimum(hi - lo, cap)
            hit = np.flatnonzero(counts)
            if len(hit) == 0:
                continue
            reps = counts[hit]
            starts = np.repeat(lo[hit] - np.cumsum(reps) + reps, reps)
            positions = starts + np.arange(int(reps.sum()))
            qs.append(np.repeat(hit, reps))
            rs.append(np.asarray(self.band_rows[band][positions], dtype=np.int64))
            self.release()
        if not qs:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        codes = np.unique(np.concatenate(qs) * np.int64(self.count) + np.concatenate(rs))
        return codes // self.count, codes % self.count


def live_in(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """``(path, meta)`` of each live segment directly under ``folder``, by name: not hidden (``.`` or ``_``),
    not named in the ``replaces`` of another one there.

    Raises ``CorruptIndexError`` for a live directory without ``meta.json``.
    """
    if not folder.is_dir():
        return []
    found: dict[str, tuple[Path, dict[str, Any] | None]] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_dir() or path.name.startswith((".", "_")):
            continue
        meta_path = path / SEGMENT_META
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
        found[path.name] = (path, meta)
    replaced = {r for _, m in found.values() if m for r in m.get("replaces", [])}
    live = []
    for name, (path, meta) in found.items():
        if name in replaced:
            continue
        if meta is None:
            raise CorruptIndexError(
                f"index segment {path} has no {SEGMENT_META}: it was not written by siftlake; move it out of {folder}"
            )
        live.append((path, meta))
    return live


def live_segments(index_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """``(path, meta)`` of each live segment of the older formats (``INDEX/segments``), by name."""
    return live_in(Path(index_dir) / SEGMENTS)


def check_params(path: Path, meta: dict[str, Any], config: DedupConfig, formats: Sequence[int] = LEGACY_FORMATS,
                 where: Path | None = None) -> None:
    """Raise ``IncompatibleIndexError`` unless the segment's format is one of ``formats`` and its signatures
    were built as ``config`` builds them (``where``: the index folder, for the message)."""
    # The banding may differ (each segment is queried with its own): what must match is everything the
    # stored signatures depend on.
    index_dir = where or path.parent.parent
    want = {k: v for k, v in config.index_params().items() if k not in BANDING}
    have = {k: v for k, v in meta.get("index_params", {}).items() if k not in BANDING}
    if meta.get("format") not in formats:
        raise IncompatibleIndexError(
            f"the near-duplicate index at {index_dir} has a segment of format {meta.get('format')} ({path.name}), "
            f"this siftlake reads formats 1, 2, 3 (older ones under {SEGMENTS}/, 3 in the partitions). Run the "
            "siftlake version that wrote it, or move that directory aside to start a new index (documents already "
            "in the lake are then not matched by new runs)."
        )
    if have != want:
        diff = {k: (have.get(k), want.get(k)) for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)}
        raise IncompatibleIndexError(
            f"the near-duplicate index at {index_dir} was built with other dedup "
            f"parameters (index vs this run: {diff}). "
            "Run with the DedupConfig the index was built with, or move that directory aside to "
            "start a new index (documents already in the lake are then not matched by new runs)."
        )

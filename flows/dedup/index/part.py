"""One segment of one partition of the index (format 3; layout in ``flows.dedup.index.layout``), opened
read-only as memory-mapped arrays: the ranges of equal band keys, and entries found by doc-id key."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flows.dedup.index.files import CorruptIndexError, Mapped, map_npy, open_signatures
from flows.dedup.index.layout import banding_of
from flows.dedup.index.segment import ENTRY_ARRAYS

PART_ARRAYS = ("keys", "refs", "id_keys", *ENTRY_ARRAYS)
"""The files of a format-3 segment (``<name>.npy``), besides ``meta.json``."""
_EMPTY = {"keys": np.uint64, "refs": np.uint64, "id_keys": np.uint64, "signatures": np.uint32, "doc_ids": "S1",
          "clusters": "S1", "is_duplicate": bool, "similarity": np.float32, "sizes": np.uint32, "hashes": np.uint64,
          "kinds": np.uint8, "containment": np.float32}
"""Dtypes of the arrays, for those a segment has no rows in (not read: most of a small run's segments hold
band rows only, and opening 12 files costs ~3 ms a segment)."""
# Sorted needles searched at once: they touch ~this share of a large haystack's pages, released after each
# piece, so the resident set stays at a few MB per piece however large the segment.
_NEEDLES_AT_ONCE = 1 << 18


def key_ranges(haystack: np.ndarray, needles: np.ndarray, release: Callable[[], None]) -> tuple[np.ndarray, np.ndarray]:
    """First position and length of the run of each needle in the sorted ``haystack`` (length 0: absent).

    ``needles`` should be sorted: numpy's binary search then starts from the previous answer, ~25x faster
    than random needles against a 32M-key haystack (0.17 vs 4.2 s for 6.4M needles, measured).
    """
    lo = np.zeros(len(needles), dtype=np.int64)
    count = np.zeros(len(needles), dtype=np.int64)
    size = len(haystack)
    if size == 0:
        return lo, count
    for start in range(0, len(needles), _NEEDLES_AT_ONCE):
        piece = needles[start : start + _NEEDLES_AT_ONCE]
        first = np.searchsorted(haystack, piece, side="left")
        inside = np.flatnonzero(first < size)
        hit = inside[np.asarray(haystack[first[inside]]) == piece[inside]]
        lo[start : start + len(piece)] = first
        if len(hit):
            count[start + hit] = np.searchsorted(haystack, piece[hit], side="right") - first[hit]
        release()
    return lo, count


@dataclass
class PartSegment(Mapped):
    """A published format-3 segment: band rows of its partition and the entries homed there."""

    name: str
    partition: int
    meta: dict[str, Any]

    @property
    def keys(self) -> np.ndarray:
        return self.arrays["keys"]

    @property
    def refs(self) -> np.ndarray:
        return self.arrays["refs"]

    @property
    def count(self) -> int:
        """Entries homed in this segment."""
        return int(self.meta["count"])

    @property
    def rows(self) -> int:
        """Band rows in this segment."""
        return int(self.meta["rows"])

    @property
    def banding(self) -> tuple[int, int]:
        return banding_of(self.meta)

    @property
    def has_sizes(self) -> bool:
        return True

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> PartSegment:
        maps: list[Any] = []
        try:
            num_perm, count = int(meta["index_params"]["num_perm"]), int(meta["count"])
            arrays = {name: map_npy(path / f"{name}.npy", maps) if int(meta["rows" if name in ("keys", "refs")
                                                                             else "count"]) else
                      np.empty((0, num_perm) if name == "signatures" else (0, 2) if name == "hashes" else (0,),
                               dtype=_EMPTY[name]) for name in PART_ARRAYS}
            handle, offset = open_signatures(path / "signatures.npy") if count else (None, 0)
            segment = cls(maps, handle, offset, num_perm, arrays, path.name, int(meta["partition"]), meta)
            segment.check_shapes()
            return segment
        except (OSError, ValueError, KeyError) as exc:
            raise CorruptIndexError(
                f"index segment {path} is unreadable ({exc}); move it out of {path.parent} and re-ingest the "
                "run that wrote it"
            ) from exc

    def check_shapes(self) -> None:
        """Raise ValueError unless the arrays agree with meta.json (a truncated copy, say)."""
        n, m = self.count, self.rows
        expected = {"keys": (m,), "refs": (m,), "signatures": (n, self.num_perm), "hashes": (n, 2)}
        for name, array in self.arrays.items():
            shape = expected.get(name, (n,))
            if array.shape != shape:
                raise ValueError(f"{name}.npy has shape {array.shape}, expected {shape}")

    def band_ranges(self, needles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each (sorted) band key's rows are in ``keys``: first position and count."""
        return key_ranges(self.keys, needles, self.release)

    def entry_ranges(self, needles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each (sorted) doc-id key's entries are: first row and count (1, or more if xxh3 collides)."""
        return key_ranges(self.id_keys, needles, self.release)

    def find_ids(self, doc_ids: Sequence[str], keys: np.ndarray) -> np.ndarray:
        """Entry row of each doc_id in this segment, -1 where absent (doc_ids compared, not only their keys)."""
        rows = np.full(len(doc_ids), -1, dtype=np.int64)
        if self.count == 0 or len(doc_ids) == 0:
            return rows
        order = np.argsort(keys, kind="stable")
        lo, count = self.entry_ranges(keys[order])
        for i in np.flatnonzero(count).tolist():
            wanted = doc_ids[int(order[i])].encode("utf-8")
            # The run of equal 64-bit keys has length 1 unless xxh3 collides: compare the real ids.
            for row in range(int(lo[i]), int(lo[i] + count[i])):
                if bytes(self.doc_ids[row]) == wanted:
                    rows[int(order[i])] = row
                    break
        self.release()
        return rows

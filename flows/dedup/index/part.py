"""One segment of one partition of the index (format 3; layout in ``flows.dedup.index.layout``), opened
read-only: its arrays as ``Column``s read on demand (no descriptor or mapping held between reads), the ranges
of equal band keys, and entries found by doc-id key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flows.dedup.index import band_lookup
from flows.dedup.index.column import Column
from flows.dedup.index.files import CorruptIndexError
from flows.dedup.index.layout import banding_of
from flows.dedup.index.segment import ENTRY_ARRAYS

PART_ARRAYS = ("keys", "refs", "id_keys", *ENTRY_ARRAYS)
"""The files of a format-3 segment (``<name>.npy``), besides ``meta.json``."""
_EMPTY = {"keys": np.uint64, "refs": np.uint64, "id_keys": np.uint64, "signatures": np.uint32, "doc_ids": "S1",
          "clusters": "S1", "is_duplicate": bool, "similarity": np.float32, "sizes": np.uint32, "hashes": np.uint64,
          "kinds": np.uint8, "containment": np.float32}
"""Dtypes of the arrays, for those a segment has no rows in (not read: most of a small run's segments hold
band rows only, and reading 12 headers costs ~3 ms a segment)."""


@dataclass
class PartSegment:
    """A published format-3 segment: band rows of its partition and the entries homed there."""

    name: str
    partition: int
    meta: dict[str, Any]
    arrays: dict[str, Column]
    num_perm: int
    keys_filter: Column | None = None
    """The Bloom filter of its band keys (``flows.dedup.index.band_lookup``); segments written before have none."""
    keys_fence: Column | None = None
    """Every ``FENCE_STEP``-th band key (``band_lookup``), with the filter."""

    @property
    def keys(self) -> Column:
        return self.arrays["keys"]

    @property
    def refs(self) -> Column:
        return self.arrays["refs"]

    @property
    def id_keys(self) -> Column:
        return self.arrays["id_keys"]

    @property
    def signatures(self) -> Column:
        return self.arrays["signatures"]

    @property
    def doc_ids(self) -> Column:
        return self.arrays["doc_ids"]

    @property
    def clusters(self) -> Column:
        return self.arrays["clusters"]

    @property
    def is_duplicate(self) -> Column:
        return self.arrays["is_duplicate"]

    @property
    def similarity(self) -> Column:
        return self.arrays["similarity"]

    @property
    def sizes(self) -> Column:
        return self.arrays["sizes"]

    @property
    def hashes(self) -> Column:
        return self.arrays["hashes"]

    @property
    def kinds(self) -> Column:
        return self.arrays["kinds"]

    @property
    def containment(self) -> Column:
        return self.arrays["containment"]

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
        try:
            num_perm = int(meta["index_params"]["num_perm"])
            arrays = {}
            for name in PART_ARRAYS:
                tail = (num_perm,) if name == "signatures" else (2,) if name == "hashes" else ()
                held = int(meta["rows" if name in ("keys", "refs") else "count"])
                arrays[name] = Column.open(path / f"{name}.npy") if held else \
                    Column.empty(path / f"{name}.npy", _EMPTY[name], tail)
            aids = [Column.open(path / f"{name}.npy") for name in (band_lookup.FILTER_FILE, band_lookup.FENCE_FILE)
                    if band_lookup.META_KEY in meta]
            segment = cls(path.name, int(meta["partition"]), meta, arrays, num_perm, *aids)
            segment.check_shapes()
            return segment
        except (OSError, ValueError, KeyError) as exc:
            raise CorruptIndexError(
                f"index segment {path} is unreadable ({exc}); move it out of {path.parent} and re-ingest the "
                "run that wrote it"
            ) from exc

    def check_shapes(self) -> None:
        """Raise ValueError unless the arrays agree with meta.json and their files hold them (a truncated copy)."""
        n, m = self.count, self.rows
        expected = {"keys": (m,), "refs": (m,), "signatures": (n, self.num_perm), "hashes": (n, 2)}
        for name, column in self.arrays.items():
            shape = expected.get(name, (n,))
            if column.shape != shape:
                raise ValueError(f"{name}.npy has shape {column.shape}, expected {shape}")
            if len(column) and column.path.stat().st_size < column.offset + len(column) * column.row_bytes:
                raise ValueError(f"{name}.npy is shorter than its header says")
        for aid, length in ((self.keys_filter, band_lookup.filter_words(m)),
                            (self.keys_fence, band_lookup.fence_length(m))):
            if aid is not None and aid.shape != (length,):
                raise ValueError(f"{aid.path.name} has shape {aid.shape}, expected {(length,)}")

    def release(self) -> None:
        """Nothing to release: columns hold no mapping between reads (``Column``)."""

    def close(self) -> None:
        """Nothing to close (``Column``)."""

    def read_signatures(self, rows: np.ndarray) -> np.ndarray:
        """Signatures of entry ``rows``, read with pread (a mapping for many)."""
        return self.signatures.take(rows)

    def band_ranges(self, needles: np.ndarray, probe: band_lookup.Probe | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Where each (sorted) band key's rows are in ``keys``: first position and count (0: absent, its position
        then meaningless). Keys the filter rules out are not searched; the others, in the block the fence names.
        ``probe``: ``band_lookup.Probe.of(needles)``, when the same needles are searched in several segments."""
        if self.keys_filter is None or self.keys_fence is None:
            return self.keys.search(needles)
        maybe = np.flatnonzero(band_lookup.may_hold(self.keys_filter, probe or band_lookup.Probe.of(needles)))
        lo, count = np.zeros(len(needles), dtype=np.int64), np.zeros(len(needles), dtype=np.int64)
        fence = self.keys_fence.range(0, len(self.keys_fence))
        lo[maybe], count[maybe] = band_lookup.fenced_ranges(self.keys, fence, needles[maybe])
        return lo, count

    def entry_ranges(self, needles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each (sorted) doc-id key's entries are: first row and count (1, or more if xxh3 collides)."""
        return self.id_keys.search(needles)

    def find_ids(self, doc_ids: Sequence[str], keys: np.ndarray) -> np.ndarray:
        """Entry row of each doc_id in this segment, -1 where absent (doc_ids compared, not only their keys)."""
        rows = np.full(len(doc_ids), -1, dtype=np.int64)
        if self.count == 0 or len(doc_ids) == 0:
            return rows
        order = np.argsort(keys, kind="stable")
        lo, count = self.entry_ranges(keys[order])
        single = np.flatnonzero(count == 1)
        wanted = np.array([doc_ids[i].encode("utf-8") for i in order[single].tolist()], dtype=object)
        same = np.array([bytes(b) for b in self.doc_ids.take(lo[single])], dtype=object) == wanted
        rows[order[single[same]]] = lo[single[same]]
        for i in np.flatnonzero(count > 1).tolist():
            # A run of equal 64-bit keys (xxh3 collides): compare the real ids.
            found = self.doc_ids.take(np.arange(lo[i], lo[i] + count[i]))
            match = [r for r, d in enumerate(found.tolist()) if d == doc_ids[int(order[i])].encode("utf-8")]
            if match:
                rows[int(order[i])] = int(lo[i]) + match[0]
        return rows

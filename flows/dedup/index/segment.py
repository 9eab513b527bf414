"""One segment of the lake's near-duplicate index on disk: its files and their layout, opening one as
memory-mapped arrays, looking entries up in it, listing the live segments and checking they fit a config.

Layout (``INDEX = LAKE/_index``)::

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
a later segment's ``meta.json`` names it in ``replaces`` (compaction).

Older indexes: segments of format 1 (before containment dedup; no ``sizes``, ``hashes``, ``kinds``,
``containment``) are read as they are, each segment queried with the banding in its own
``meta.json`` (format 1 lakes have the then default 32 x 4). Their entries are matched as near and
exact-signature duplicates only: without set sizes nothing is found contained in them, and
without content hashes a copy of one is ``near`` (similarity 1.0), not ``exact``.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import xxhash

from flows.dedup.config import DedupConfig
from flows.dedup.records import DUP_KINDS
from flows.lake.layout import SEGMENT_META, SEGMENTS

FORMAT = 2
"""2: set sizes, content hashes, dup_kind and dup_containment per entry (containment dedup)."""
READABLE_FORMATS = (1, 2)
"""Format 1 segments (written before containment dedup) are read and queried for near and exact
duplicates; they have no set sizes, so nothing is ever found contained in their entries."""
_FORMAT_2_ARRAYS = ("sizes", "hashes", "kinds", "containment")
_BANDING = ("bands", "rows")
"""Index parameters a segment may differ in from the run's config: queried with its own banding."""
KIND_CODES = (None, *DUP_KINDS)
"""``kinds.npy`` stores the position of an entry's dup_kind in this tuple (0: kept, no kind)."""


class IncompatibleIndexError(ValueError):
    """The index on disk was built with other parameters than the ones asked for."""


class CorruptIndexError(RuntimeError):
    """A published segment is unreadable."""


def doc_id_keys(doc_ids: Sequence[str]) -> np.ndarray:
    """The 64-bit keys ``id_keys.npy`` sorts doc_ids by: xxh3_64 of their UTF-8 bytes."""
    return np.fromiter(
        (xxhash.xxh3_64_intdigest(d.encode("utf-8")) for d in doc_ids),
        dtype=np.uint64,
        count=len(doc_ids),
    )


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


def _npy_header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """Shape, Fortran order, dtype and data offset of an open .npy file."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    return shape, fortran, dtype, f.tell()


def _map_npy(path: Path, maps: list[mmap.mmap]) -> np.ndarray:
    """A read-only view of a .npy file through an mmap we own (so its pages can be released)."""
    with open(path, "rb") as f:
        shape, fortran, dtype, offset = _npy_header(f)
        count = int(np.prod(shape))
        if fortran or count == 0:
            return np.asarray(np.load(path, allow_pickle=False))
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    maps.append(mapped)
    return np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)


@dataclass
class Segment:
    """One published segment opened read-only: its arrays memory-mapped (format-1 gaps filled with
    stride-0 stand-ins), its ``meta.json`` and a file handle for reading single signatures."""

    name: str
    meta: dict[str, Any]
    signatures: np.ndarray
    band_keys: np.ndarray
    band_rows: np.ndarray
    id_keys: np.ndarray
    id_rows: np.ndarray
    doc_ids: np.ndarray
    clusters: np.ndarray
    is_duplicate: np.ndarray
    similarity: np.ndarray
    sizes: np.ndarray
    hashes: np.ndarray
    kinds: np.ndarray
    containment: np.ndarray
    maps: list[mmap.mmap]
    signature_file: BinaryIO
    """Unbuffered handle for reading single signature rows with pread (see ``read_signatures``)."""
    signature_offset: int

    def release(self) -> None:
        """Drop this segment's mapped pages from our RSS (they stay in the OS page cache).

        Random band keys touch every page of a band's array once a batch is large, so without
        this the resident set would grow with the lake instead of with the batch.
        """
        for mapped in self.maps:
            mapped.madvise(mmap.MADV_DONTNEED)

    def read_signatures(self, rows: np.ndarray) -> np.ndarray:
        """Signatures of entry ``rows`` read with pread, not through the mapping.

        A page fault on a mapping maps its 64 KB neighbourhood too ("fault-around"), so 10,000
        random rows through the mmap cost the whole 512 MB file in RSS; reads cost what they read.
        """
        uniq, pos = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
        width = self.signatures.shape[1] * 4
        fd = self.signature_file.fileno()
        raw = b"".join(os.pread(fd, width, self.signature_offset + r * width) for r in uniq.tolist())
        return np.frombuffer(raw, dtype=np.uint32).reshape(len(uniq), -1)[pos.reshape(-1)]

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
        maps: list[mmap.mmap] = []

        def arr(name: str) -> np.ndarray:
            if name in _FORMAT_2_ARRAYS and int(meta["format"]) < 2:
                return _unknown(name, int(meta["count"]))
            return _map_npy(path / f"{name}.npy", maps)

        try:
            signature_file = open(path / "signatures.npy", "rb", buffering=0)  # noqa: SIM115 (lives with the segment)
            signature_offset = _npy_header(signature_file)[3]
            segment = cls(
                path.name,
                meta,
                arr("signatures"),
                arr("band_keys"),
                arr("band_rows"),
                arr("id_keys"),
                arr("id_rows"),
                arr("doc_ids"),
                arr("clusters"),
                arr("is_duplicate"),
                arr("similarity"),
                arr("sizes"),
                arr("hashes"),
                arr("kinds"),
                arr("containment"),
                maps,
                signature_file,
                signature_offset,
            )
            segment.check_shapes()
            return segment
        except (OSError, ValueError) as exc:
            raise CorruptIndexError(
                f"index segment {path} is unreadable ({exc}); move it out of "
                f"{path.parent} and re-ingest the run that wrote it"
            ) from exc

    def check_shapes(self) -> None:
        """Raise ValueError unless the arrays agree with meta.json (a truncated copy, say)."""
        n, params = self.count, self.meta["index_params"]
        bands = self.banding[0]
        expected = {
            "signatures": (n, params["num_perm"]),
            "band_keys": (bands, n),
            "band_rows": (bands, n),
            "id_keys": (n,),
            "id_rows": (n,),
            "doc_ids": (n,),
            "clusters": (n,),
            "is_duplicate": (n,),
            "similarity": (n,),
            "sizes": (n,),
            "hashes": (n, 2),
            "kinds": (n,),
            "containment": (n,),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name}.npy has shape {getattr(self, name).shape}, expected {shape}")

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


def live_segments(index_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """``(path, meta)`` of each live segment, by name: not hidden, not replaced by a compaction.

    Raises ``CorruptIndexError`` for a live directory without ``meta.json``.
    """
    root = index_dir / SEGMENTS
    if not root.is_dir():
        return []
    found: dict[str, tuple[Path, dict[str, Any] | None]] = {}
    for path in sorted(root.iterdir()):
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
                f"index segment {path} has no {SEGMENT_META}: it was not written by write_segment; "
                f"move it out of {root}"
            )
        live.append((path, meta))
    return live


def check_params(path: Path, meta: dict[str, Any], config: DedupConfig) -> None:
    """Raise ``IncompatibleIndexError`` unless the segment's format is readable and its signatures
    were built as ``config`` builds them."""
    # The banding may differ (each segment is queried with its own; compaction re-bands to the config's):
    # what must match is everything the stored signatures depend on.
    want = {k: v for k, v in config.index_params().items() if k not in _BANDING}
    have = {k: v for k, v in meta.get("index_params", {}).items() if k not in _BANDING}
    if meta.get("format") not in READABLE_FORMATS:
        raise IncompatibleIndexError(
            f"the near-duplicate index at {path.parent.parent} has format {meta.get('format')}, this "
            f"siftlake reads formats {', '.join(map(str, READABLE_FORMATS))}. Run the siftlake version "
            "that wrote it, or move that directory aside to start a new index (documents already in the "
            "lake are then not matched by new runs)."
        )
    if have != want:
        diff = {k: (have.get(k), want.get(k)) for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)}
        raise IncompatibleIndexError(
            f"the near-duplicate index at {path.parent.parent} was built with other dedup "
            f"parameters (index vs this run: {diff}). "
            "Run with the DedupConfig the index was built with, or move that directory aside to "
            "start a new index (documents already in the lake are then not matched by new runs)."
        )

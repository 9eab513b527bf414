"""The lake's persistent near-duplicate index: immutable segments of sorted, memory-mapped arrays.

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

A run writes one segment into its staging area (``write_segment``) and publishes it with one
atomic directory rename to ``INDEX/segments/<name>`` (``publish_segment``, or the caller's own
rename) once its Parquet files are in place: a reader sees a whole segment or none. Names must be
unique for ever (use the run id): compaction records the names it replaced. Directories whose name
starts with ``.`` or ``_`` (``_tmp...``) are ignored. A new entry is written for each doc_id not
yet in the lake, kept or duplicate, so later runs can match old duplicates too.

Cost: a query is ``bands x segments`` calls of ``np.searchsorted`` over the batch's band keys on
the memory-mapped sorted keys (``batch x log(segment)`` each), then the signatures of the
candidate rows only, read with ``pread``. Mapped pages are released after each band
(``MADV_DONTNEED``), so the resident set follows the batch and one band of one segment, not the
lake: 1,000,000 indexed documents cost ~110 MB of RSS over the empty-index baseline while
resolving a 20,000-document batch (``bench/dedup.py``). On disk: ~1,450 bytes per document with
the defaults (512 signature, 768 band keys and rows, 25 set size, content hash and containment
decision, the rest ids and decisions). Each candidate is checked for both near-duplication and
containment (``contained_in``, using ``sizes.npy``).

Older indexes: segments of format 1 (before containment dedup; no ``sizes``, ``hashes``, ``kinds``,
``containment``) are read as they are, each segment queried with the banding in its own
``meta.json`` (format 1 lakes have the then default 32 x 4). Their entries are matched as near and
exact-signature duplicates only: without set sizes nothing is found contained in them, and
without content hashes a copy of one is ``near`` (similarity 1.0), not ``exact``.

Compaction (``compact``) is size-tiered: it merges the smallest live segments (up to a number of
entries) into one, published with the same single rename; its ``meta.json`` names the segments it
replaces, which readers then skip, so a crash at any point leaves a consistent index. Run it
between ingest runs (under the lake's lock), e.g. when there are more than ~32 segments: query
time grows linearly with their number.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import xxhash

from flows.dedup.resolve import (
    DUP_KINDS,
    DedupBatch,
    DedupConfig,
    DedupDecisions,
    KeptDocuments,
    KnownDecisions,
    LakeMatches,
    band_key,
    band_keys,
    contained_in,
    estimated_jaccard,
    hash_words,
)
from flows.lake.layout import SEGMENT_META, SEGMENTS

FORMAT = 2
"""2: set sizes, content hashes, dup_kind and dup_containment per entry (containment dedup)."""
READABLE_FORMATS = (1, 2)
"""Format 1 segments (written before containment dedup) are read and queried for near and exact
duplicates; they have no set sizes, so nothing is ever found contained in their entries."""
_FORMAT_2_ARRAYS = ("sizes", "hashes", "kinds", "containment")
_BANDING = ("bands", "rows")
"""Index parameters a segment may differ in from the run's config: queried with its own banding."""
_KIND_CODES = (None, *DUP_KINDS)
# Candidate pairs verified at once: bounds the fetched signatures to ~32 MB.
_VERIFY_CHUNK = 1 << 16
# Candidate pairs gathered at once in a query (worst case, every bucket full): ~130 MB while deduplicated.
_CANDIDATE_PAIRS_AT_ONCE = 1 << 23


class IncompatibleIndexError(ValueError):
    """The index on disk was built with other parameters than the ones asked for."""


class CorruptIndexError(RuntimeError):
    """A published segment is unreadable."""


def _id_keys(doc_ids: Sequence[str]) -> np.ndarray:
    return np.fromiter(
        (xxhash.xxh3_64_intdigest(d.encode("utf-8")) for d in doc_ids),
        dtype=np.uint64,
        count=len(doc_ids),
    )


def _encode(values: Sequence[str]) -> np.ndarray:
    encoded = [v.encode("utf-8") for v in values]
    width = max((len(v) for v in encoded), default=1) or 1
    return np.array(encoded, dtype=f"S{width}")


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


def _npy_writer(path: Path, dtype: type[np.generic], shape: tuple[int, ...]) -> BinaryIO:
    """An open .npy file, header written: append the array's bytes in C order, then close it."""
    f = open(path, "wb")  # noqa: SIM115 (the caller closes it)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_2_0(f, header)
    return f


def _write_bands(segment_dir: Path, signatures: np.ndarray, config: DedupConfig) -> None:
    # One band at a time: memory stays at a few n-sized vectors, not bands x n x 16 bytes.
    shape = (config.bands, len(signatures))
    with (
        _npy_writer(segment_dir / "band_keys.npy", np.uint64, shape) as keys_file,
        _npy_writer(segment_dir / "band_rows.npy", np.uint32, shape) as rows_file,
    ):
        for band in range(config.bands):
            key = band_key(signatures, config, band)
            order = np.argsort(key, kind="stable")
            keys_file.write(key[order].tobytes())
            rows_file.write(order.astype(np.uint32).tobytes())


@dataclass
class _Segment:
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
    def load(cls, path: Path, meta: dict[str, Any]) -> _Segment:
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


class LakeIndex:
    """All published segments of one lake's index, opened read-only."""

    def __init__(self, index_dir: Path, config: DedupConfig, segments: list[_Segment]) -> None:
        self.index_dir = index_dir
        self.config = config
        self.segments = segments

    @classmethod
    def open(cls, index_dir: Path, config: DedupConfig) -> LakeIndex:
        """Open ``index_dir`` (``LAKE/_index``); a missing or empty directory is an empty index.

        Raises ``IncompatibleIndexError`` when a segment was built with other parameters.
        """
        segments = []
        for path, meta in _live_segments(Path(index_dir)):
            _check_params(path, meta, config)
            if int(meta["count"]) > 0:
                segments.append(_Segment.load(path, meta))
        return cls(Path(index_dir), config, segments)

    def __len__(self) -> int:
        return sum(s.count for s in self.segments)

    def _locate(self, doc_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        # Segment and row of each doc_id (-1, -1 when absent); first segment by name wins.
        seg = np.full(len(doc_ids), -1, dtype=np.int64)
        row = np.full(len(doc_ids), -1, dtype=np.int64)
        keys = _id_keys(doc_ids)
        for s, segment in enumerate(self.segments):
            rows = segment.find_ids(doc_ids, keys)
            segment.release()
            new = (rows >= 0) & (seg < 0)
            seg[new], row[new] = s, rows[new]
        return seg, row

    def decisions_of(self, doc_ids: Sequence[str]) -> KnownDecisions:
        """The decisions the lake holds for ``doc_ids`` (``found`` marks which are there)."""
        seg, row = self._locate(doc_ids)
        clusters = [""] * len(doc_ids)
        is_dup = np.zeros(len(doc_ids), dtype=bool)
        sims = np.ones(len(doc_ids), dtype=np.float64)
        kinds: list[str | None] = [None] * len(doc_ids)
        inside = np.ones(len(doc_ids), dtype=np.float64)
        for i in np.flatnonzero(seg >= 0).tolist():
            segment, r = self.segments[int(seg[i])], int(row[i])
            clusters[i] = segment.clusters[r].decode("utf-8")
            is_dup[i] = bool(segment.is_duplicate[r])
            sims[i] = float(segment.similarity[r])
            kinds[i] = _KIND_CODES[int(segment.kinds[r])]
            inside[i] = float(segment.containment[r])
        for segment in self.segments:
            segment.release()
        return KnownDecisions(seg >= 0, clusters, is_dup, sims, kinds, inside)

    def signatures_of(self, doc_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(found, signatures)`` of lake documents; rows not found are all-zero."""
        kept = self.kept_documents(doc_ids)
        return kept.found, kept.signatures

    def kept_documents(self, doc_ids: Sequence[str]) -> KeptDocuments:
        """Signatures, set sizes and content hashes of lake documents; rows not found are all-zero."""
        seg, row = self._locate(doc_ids)
        out = KeptDocuments(seg >= 0, np.zeros((len(doc_ids), self.config.num_perm), dtype=np.uint32),
                            np.zeros(len(doc_ids), dtype=np.uint32), np.zeros((len(doc_ids), 2), dtype=np.uint64))
        for s, segment in enumerate(self.segments):
            mine = np.flatnonzero(seg == s)
            if len(mine):
                out.signatures[mine] = segment.read_signatures(row[mine])
                out.sizes[mine] = segment.sizes[row[mine]]
                out.hashes[mine] = segment.hashes[row[mine]]
            segment.release()
        return out

    def query(self, sigs: np.ndarray, sizes: np.ndarray) -> tuple[LakeMatches, LakeMatches]:
        """``(near, containing)``: each query's most similar lake document (ties: smallest cluster id),
        if its estimated Jaccard is >= threshold, and the lake document that best contains it
        (``contained_in``; highest estimated containment, ties: smallest cluster id). ``sizes`` are
        the queries' distinct shingle counts.

        Candidates are verified one segment and one block of queries at a time and only the best match
        per query is kept, so a lake holding many copies of a page costs time, not memory (keeping every
        match once took ~45 KB per query document against a lake with 60 copies of each page).
        """
        cfg = self.config
        width = max((s.clusters.dtype.itemsize for s in self.segments), default=1)
        best, containing = _BestMatches(len(sigs), width), _BestMatches(len(sigs), width)
        sizes = np.asarray(sizes, dtype=np.int64)
        # Each segment is queried with the banding it was built with (older lakes: 32 x 4), so an index
        # from before a banding change keeps answering; the batch's keys cost little per banding.
        keys_by_banding: dict[tuple[int, int], np.ndarray] = {}
        for number, segment in enumerate(self.segments):
            bands, rows = segment.banding
            if segment.banding not in keys_by_banding:
                banded = cfg.model_copy(update={"bands": bands, "rows": rows})
                keys_by_banding[segment.banding] = (band_keys(sigs, banded) if len(sigs)
                                                    else np.empty((bands, 0), np.uint64))
            qkeys = keys_by_banding[segment.banding]
            # Query rows go a block at a time: a block's candidate pairs (deduplicated across bands, so
            # each is verified once) stay within _CANDIDATE_PAIRS_AT_ONCE however large the batch.
            block = max(1, _CANDIDATE_PAIRS_AT_ONCE // (bands * cfg.max_candidates_per_band))
            for first in range(0, len(sigs), block):
                q, r = segment.candidates(qkeys[:, first : first + block], cfg.max_candidates_per_band)
                q += first
                for start in range(0, len(q), _VERIFY_CHUNK):
                    chunk_q, chunk_r = q[start : start + _VERIFY_CHUNK], r[start : start + _VERIFY_CHUNK]
                    theirs = segment.read_signatures(chunk_r)
                    sims = estimated_jaccard(sigs[chunk_q], theirs)
                    ok = np.flatnonzero(sims >= cfg.threshold)
                    best.offer(number, chunk_q[ok], chunk_r[ok], sims[ok], segment.clusters[chunk_r[ok]])
                    if not segment.has_sizes:
                        continue
                    inside, estimate = contained_in(sigs[chunk_q], theirs, sizes[chunk_q],
                                                    segment.sizes[chunk_r], cfg)
                    ok = np.flatnonzero(inside)
                    containing.offer(number, chunk_q[ok], chunk_r[ok], estimate[ok], segment.clusters[chunk_r[ok]])
            segment.release()
        return best.matches(self.segments), containing.matches(self.segments)

    def write_segment(self, segment_dir: Path, batch: DedupBatch, decisions: DedupDecisions) -> int:
        """Write the batch's entries not yet in the lake into ``segment_dir``; return their count.

        ``segment_dir`` must be new or empty. Publish it with :func:`publish_segment` (one
        rename). When every document is already in the lake nothing is written, not even the
        directory, and 0 is returned: there is nothing to publish.
        """
        seg, _ = self._locate(batch.doc_ids)
        seen: set[str] = set()
        rows = []
        # A doc_id given twice: record its kept row, if one of them is kept.
        for i in np.argsort(np.asarray(decisions.is_duplicate, dtype=bool), kind="stable").tolist():
            doc_id = batch.doc_ids[i]
            if seg[i] < 0 and doc_id not in seen:
                seen.add(doc_id)
                rows.append(i)
        rows.sort()
        if not rows:
            return 0
        sel = np.array(rows, dtype=np.int64)
        signatures = np.asarray(batch.signatures, dtype=np.uint32).reshape(len(batch), self.config.num_perm)
        if len(rows) < len(batch):  # copy only when some rows are left out
            signatures = signatures[sel]
        _write_arrays(
            Path(segment_dir),
            self.config,
            doc_ids=[batch.doc_ids[i] for i in rows],
            clusters=[decisions.dup_cluster[i] for i in rows],
            signatures=signatures,
            is_duplicate=np.asarray(decisions.is_duplicate, dtype=bool)[sel],
            similarity=np.asarray(decisions.dup_similarity, dtype=np.float32)[sel],
            sizes=np.asarray(batch.sizes, dtype=np.uint32)[sel],
            hashes=hash_words([batch.content_hashes[i] for i in rows]),
            kinds=np.array([_KIND_CODES.index(decisions.dup_kind[i]) for i in rows], dtype=np.uint8),
            containment=np.asarray(decisions.dup_containment, dtype=np.float32)[sel],
        )
        return len(rows)


class _BestMatches:
    """The best lake match offered so far for each query row: highest similarity, then smallest cluster."""

    def __init__(self, n: int, cluster_width: int) -> None:
        self.similarity = np.full(n, -1.0)
        self.cluster = np.zeros(n, dtype=f"S{cluster_width}")
        self.segment = np.full(n, -1, dtype=np.int64)
        self.row = np.full(n, -1, dtype=np.int64)

    def offer(self, segment: int, q: np.ndarray, r: np.ndarray, sims: np.ndarray, clusters: np.ndarray) -> None:
        if len(q) == 0:
            return
        order = np.lexsort((clusters, -sims, q))  # per query row, its best offer first
        first = order[np.r_[True, q[order][1:] != q[order][:-1]]]
        q, r, sims, clusters = q[first], r[first], sims[first], clusters[first]
        held_sim, held_cluster = self.similarity[q], self.cluster[q]
        better = (sims > held_sim) | ((sims == held_sim) & (clusters < held_cluster))
        q = q[better]
        self.similarity[q], self.cluster[q] = sims[better], clusters[better]
        self.segment[q], self.row[q] = segment, r[better]

    def matches(self, segments: Sequence[_Segment]) -> LakeMatches:
        rows = np.flatnonzero(self.segment >= 0)
        where = list(zip(self.segment[rows].tolist(), self.row[rows].tolist(), strict=True))
        return LakeMatches(
            query_rows=rows,
            doc_ids=[segments[s].doc_ids[r].decode("utf-8") for s, r in where],
            dup_cluster=[segments[s].clusters[r].decode("utf-8") for s, r in where],
            similarity=self.similarity[rows],
        )


def segment_destination(index_dir: Path, segment_dir: Path) -> Path:
    """Where a written segment must be renamed to: ``index_dir/segments/<segment_dir.name>``."""
    return Path(index_dir) / SEGMENTS / Path(segment_dir).name


def publish_segment(index_dir: Path, segment_dir: Path) -> Path:
    """Make a written segment visible with one atomic rename (same filesystem required)."""
    dest = segment_destination(index_dir, segment_dir)
    if dest.name.startswith((".", "_")):
        raise ValueError(f"segment name {dest.name!r} starts with '.' or '_': readers skip it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # os.rename fails on a non-empty destination rather than overwrite an existing segment.
    Path(segment_dir).rename(dest)
    return dest


def _write_arrays(
    segment_dir: Path,
    config: DedupConfig,
    *,
    doc_ids: list[str],
    clusters: list[str],
    signatures: np.ndarray,
    is_duplicate: np.ndarray,
    similarity: np.ndarray,
    sizes: np.ndarray,
    hashes: np.ndarray,
    kinds: np.ndarray,
    containment: np.ndarray,
    replaces: Sequence[str] = (),
) -> None:
    segment_dir.mkdir(parents=True, exist_ok=True)
    if any(segment_dir.iterdir()):
        raise FileExistsError(f"segment directory {segment_dir} is not empty")
    n = len(doc_ids)
    _write_bands(segment_dir, signatures, config)
    idk = _id_keys(doc_ids)
    id_order = np.argsort(idk, kind="stable")
    arrays = {
        "signatures": signatures,
        "id_keys": idk[id_order],
        "id_rows": id_order.astype(np.uint32),
        "doc_ids": _encode(doc_ids),
        "clusters": _encode(clusters),
        "is_duplicate": is_duplicate,
        "similarity": similarity,
        "sizes": sizes,
        "hashes": hashes,
        "kinds": kinds,
        "containment": containment,
    }
    for name, array in arrays.items():
        np.save(segment_dir / f"{name}.npy", array, allow_pickle=False)
    meta = {"format": FORMAT, "index_params": config.index_params(), "count": n, "replaces": list(replaces)}
    # meta.json last: a segment dir with it is complete (the rename makes it visible anyway).
    (segment_dir / SEGMENT_META).write_text(json.dumps(meta, indent=1, sort_keys=True))


def _live_segments(index_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
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


def _check_params(path: Path, meta: dict[str, Any], config: DedupConfig) -> None:
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


def segment_count(index_dir: Path) -> int:
    """Number of live segments: query time grows with it, so compact when it passes a few dozen."""
    return len(_live_segments(Path(index_dir)))


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
    for path, meta in sorted(_live_segments(Path(index_dir)), key=lambda pm: (int(pm[1]["count"]), pm[0].name)):
        _check_params(path, meta, config)
        if total + int(meta["count"]) > max_entries:
            break
        picked.append((path, meta))
        total += int(meta["count"])
    if len(picked) < 2:
        return None
    segs = [_Segment.load(p, m) for p, m in picked if int(m["count"]) > 0]
    # Inherit older replaced names too, so a leftover directory never comes back to life.
    replaces = sorted({p.name for p, _ in picked} | {r for _, m in picked for r in m.get("replaces", [])})
    tmp = root / f"_tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    _write_arrays(
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

"""A batch's best matches in the lake's index: candidates sharing a band key, verified once each, the best
kept per query row.

Partitions (format 3): a block of query rows' band keys is sorted by (partition, key) and each partition's
slice is searched in that partition's segments (sorted needles: one pass over each segment's keys, released
as it goes). Each hit names a doc-id key (``ref``); the pairs (query, ref) of a chunk of queries are
deduplicated across bands and partitions, each ref is found in its home partition (all entries with that
key: a 64-bit collision only adds a candidate, never a wrong one; a ref no longer there adds none), and
each pair is verified once. Older segments (``INDEX/segments``) are queried as before, one band at a time
with their own banding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from flows.dedup.config import DedupConfig
from flows.dedup.fingerprint import band_keys, contained_in, estimated_jaccard
from flows.dedup.index import band_lookup
from flows.dedup.index.files import ranges
from flows.dedup.index.layout import partition_of
from flows.dedup.index.part import PartSegment
from flows.dedup.index.segment import Segment
from flows.dedup.records import LakeMatches

# Candidate pairs verified at once: bounds the fetched signatures to ~32 MB.
_VERIFY_CHUNK = 1 << 16
# Candidate pairs gathered at once (worst case, every bucket full): ~130 MB while deduplicated.
_CANDIDATE_PAIRS_AT_ONCE = 1 << 23
# Query rows whose band keys are sorted and searched at once: ~26 bytes x bands each (~55 MB).
_QUERY_ROWS_AT_ONCE = 1 << 15


class BestMatches:
    """The best lake match offered so far for each query row: highest similarity, then smallest cluster,
    then smallest doc_id (so the answer does not depend on how the index is laid out)."""

    def __init__(self, n: int, cluster_width: int, id_width: int) -> None:
        self.similarity = np.full(n, -1.0)
        self.cluster = np.zeros(n, dtype=f"S{cluster_width}")
        self.doc_id = np.zeros(n, dtype=f"S{id_width}")
        self.segment = np.full(n, -1, dtype=np.int64)
        self.row = np.full(n, -1, dtype=np.int64)

    def offer(self, segment: int, q: np.ndarray, r: np.ndarray, sims: np.ndarray, clusters: np.ndarray,
              ids: np.ndarray) -> None:
        if len(q) == 0:
            return
        order = np.lexsort((ids, clusters, -sims, q))  # per query row, its best offer first
        first = order[np.r_[True, q[order][1:] != q[order][:-1]]]
        q, r, sims, clusters, ids = q[first], r[first], sims[first], clusters[first], ids[first]
        held_sim, held_cluster, held_id = self.similarity[q], self.cluster[q], self.doc_id[q]
        better = (sims > held_sim) | ((sims == held_sim) & (
            (clusters < held_cluster) | ((clusters == held_cluster) & (ids < held_id))))
        q = q[better]
        self.similarity[q], self.cluster[q], self.doc_id[q] = sims[better], clusters[better], ids[better]
        self.segment[q], self.row[q] = segment, r[better]

    def matches(self, segments: Sequence[Segment | PartSegment]) -> LakeMatches:
        rows = np.flatnonzero(self.segment >= 0)
        doc_ids, clusters = [""] * len(rows), [""] * len(rows)
        for s in np.unique(self.segment[rows]).tolist():
            mine = np.flatnonzero(self.segment[rows] == s)
            picked = self.row[rows[mine]]
            for i, doc, cluster in zip(mine.tolist(), segments[s].doc_ids[picked], segments[s].clusters[picked],
                                       strict=True):
                doc_ids[i], clusters[i] = bytes(doc).decode("utf-8"), bytes(cluster).decode("utf-8")
        return LakeMatches(query_rows=rows, doc_ids=doc_ids, dup_cluster=clusters, similarity=self.similarity[rows])


@dataclass
class Query:
    """One batch's query against the index's segments (``segments``: legacy and partition ones, by number)."""

    segments: Sequence[Segment | PartSegment]
    config: DedupConfig
    sigs: np.ndarray
    sizes: np.ndarray
    skip_banding: tuple[int, int] | None = None
    """Band rows of this banding are not searched (a run's partition tasks search them: ``band_candidates``)."""

    def __post_init__(self) -> None:
        width = max((s.clusters.dtype.itemsize for s in self.segments), default=1)
        id_width = max((s.doc_ids.dtype.itemsize for s in self.segments), default=1)
        self.best = BestMatches(len(self.sigs), width, id_width)
        self.containing = BestMatches(len(self.sigs), width, id_width)

    def run(self) -> tuple[LakeMatches, LakeMatches]:
        self.legacy()
        self.partitions()
        return self.best.matches(self.segments), self.containing.matches(self.segments)

    def legacy(self) -> None:
        """Older segments, each with the banding it was built with (older lakes: 32 x 4), query rows a block
        at a time: a block's candidate pairs (deduplicated across bands, so each is verified once) stay
        within _CANDIDATE_PAIRS_AT_ONCE however large the batch."""
        cfg = self.config
        keys_by_banding: dict[tuple[int, int], np.ndarray] = {}
        for number, segment in enumerate(self.segments):
            if not isinstance(segment, Segment):
                continue
            bands, rows = segment.banding
            if segment.banding not in keys_by_banding:
                banded = cfg.model_copy(update={"bands": bands, "rows": rows})
                keys_by_banding[segment.banding] = (band_keys(self.sigs, banded) if len(self.sigs)
                                                    else np.empty((bands, 0), np.uint64))
            qkeys = keys_by_banding[segment.banding]
            block = max(1, _CANDIDATE_PAIRS_AT_ONCE // (bands * cfg.max_candidates_per_band))
            for first in range(0, len(self.sigs), block):
                q, r = segment.candidates(qkeys[:, first : first + block], cfg.max_candidates_per_band)
                self.verify(q + first, np.full(len(q), number), r)
            segment.release()

    def partitions(self) -> None:
        """Format-3 segments, grouped by banding (a banding change leaves older band rows as they were)."""
        by_banding: dict[tuple[int, int], dict[int, list[int]]] = {}
        for number, segment in enumerate(self.segments):
            if isinstance(segment, PartSegment) and segment.rows and segment.banding != self.skip_banding:
                by_banding.setdefault(segment.banding, {}).setdefault(segment.partition, []).append(number)
        for (bands, rows), parts in by_banding.items():
            banded = self.config.model_copy(update={"bands": bands, "rows": rows})
            for first in range(0, len(self.sigs), _QUERY_ROWS_AT_ONCE):
                block = self.sigs[first : first + _QUERY_ROWS_AT_ONCE]
                hits = list(self.band_hits(band_keys(block, banded).reshape(-1), parts))
                if hits:
                    q, numbers, lo, count = (np.concatenate(column) for column in zip(*hits, strict=True))
                    self.verify_hits((q % len(block)) + first, numbers, lo, count)

    def band_hits(self, keys: np.ndarray, parts: dict[int, list[int]]
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """``(flat key position, segment, first row, count)`` of each band key found, ``count`` capped at
        max_candidates_per_band (the first rows in (key, ref) order)."""
        partitions = self.config.partitions
        order = np.argsort(keys)
        if partitions > 1:
            part = partition_of(keys[order], partitions).astype(np.uint16)
            by_part = np.argsort(part, kind="stable")  # radix sort of small ints: keeps the key order
            order = order[by_part]
            bounds = np.searchsorted(part[by_part], np.arange(partitions + 1))
        else:
            bounds = np.array([0, len(keys)])
        needles_all = keys[order]
        for partition, numbers in parts.items():
            start, stop = int(bounds[partition]), int(bounds[partition + 1])
            if start == stop:
                continue
            needles = needles_all[start:stop]
            probe = band_lookup.Probe.of(needles)
            for number in numbers:
                segment = self.segments[number]
                assert isinstance(segment, PartSegment)
                lo, count = segment.band_ranges(needles, probe)
                hit = np.flatnonzero(count)
                if len(hit):
                    yield (order[start + hit], np.full(len(hit), number), lo[hit],
                           np.minimum(count[hit], self.config.max_candidates_per_band))

    def verify_hits(self, q: np.ndarray, number: np.ndarray, lo: np.ndarray, count: np.ndarray) -> None:
        """Expand band-key hits into (query, ref) pairs a chunk of query rows at a time, each pair once."""
        by_query = np.argsort(q, kind="stable")
        q, number, lo, count = q[by_query], number[by_query], lo[by_query], count[by_query]
        ends = np.cumsum(count)
        start = 0
        while start < len(q):
            base = ends[start] - count[start]
            stop = int(np.searchsorted(ends, base + _CANDIDATE_PAIRS_AT_ONCE, side="right"))
            stop = max(stop, start + 1)
            if stop < len(q):  # never split one query row's hits: its pairs are deduplicated together
                back = int(np.searchsorted(q, q[stop], side="left"))
                stop = back if back > start else int(np.searchsorted(q, q[stop], side="right"))
            self.verify_pairs(*self.pairs(q[start:stop], number[start:stop], lo[start:stop], count[start:stop]))
            start = stop

    def pairs(self, q: np.ndarray, number: np.ndarray, lo: np.ndarray, count: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """The distinct ``(query row, ref)`` pairs of some hits."""
        reps, positions = ranges(lo, count)
        refs = np.empty(len(reps), dtype=np.uint64)
        hit_segment = number[reps]
        for segment_number in np.unique(number).tolist():
            mine = np.flatnonzero(hit_segment == segment_number)
            segment = self.segments[segment_number]
            assert isinstance(segment, PartSegment)
            refs[mine] = segment.refs[positions[mine]]
            segment.release()
        qs = q[reps]
        order = np.lexsort((refs, qs))
        qs, refs = qs[order], refs[order]
        keep = np.r_[True, (qs[1:] != qs[:-1]) | (refs[1:] != refs[:-1])] if len(qs) else np.zeros(0, bool)
        return qs[keep], refs[keep]

    def verify_pairs(self, q: np.ndarray, refs: np.ndarray) -> None:
        """Find each ref's entries in its home partition, then verify each (query, entry) pair."""
        uniq, inverse = np.unique(refs, return_inverse=True)
        inverse = inverse.reshape(-1)
        found_ref, found_segment, found_row = self.entries_of(uniq)
        # Entries per distinct ref (usually 1; 0 when it is gone, more when xxh3 collides).
        starts = np.searchsorted(found_ref, np.arange(len(uniq) + 1))
        pair, entry = ranges(starts[:-1][inverse], np.diff(starts)[inverse])
        self.verify(q[pair], found_segment[entry], found_row[entry])

    def entries_of(self, refs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ref index, segment, row)`` of every entry whose doc-id key is one of ``refs`` (sorted), by ref."""
        out_ref, out_segment, out_row = [], [], []
        home = partition_of(refs, self.config.partitions)
        for number, segment in enumerate(self.segments):
            if not isinstance(segment, PartSegment) or segment.count == 0:
                continue
            mine = np.flatnonzero(home == segment.partition)
            if len(mine) == 0:
                continue
            lo, count = segment.entry_ranges(refs[mine])
            owner, rows = ranges(lo, count)
            out_ref.append(mine[owner])
            out_segment.append(np.full(len(owner), number))
            out_row.append(rows)
        if not out_ref:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        ref, numbers, row = np.concatenate(out_ref), np.concatenate(out_segment), np.concatenate(out_row)
        order = np.argsort(ref, kind="stable")
        return ref[order], numbers[order], row[order]

    def verify(self, q: np.ndarray, number: np.ndarray, r: np.ndarray) -> None:
        """Estimate each candidate pair's Jaccard and containment; offer the verified ones."""
        cfg = self.config
        for segment_number in np.unique(number).tolist():
            mine = np.flatnonzero(number == segment_number)
            segment = self.segments[segment_number]
            for start in range(0, len(mine), _VERIFY_CHUNK):
                pick = mine[start : start + _VERIFY_CHUNK]
                chunk_q, chunk_r = q[pick], r[pick]
                theirs = segment.read_signatures(chunk_r)
                sims = estimated_jaccard(self.sigs[chunk_q], theirs)
                near = sims >= cfg.threshold
                self.best.offer(segment_number, chunk_q[near], chunk_r[near], sims[near],
                                segment.clusters[chunk_r[near]], segment.doc_ids[chunk_r[near]])
                if segment.has_sizes:
                    inside, estimate = contained_in(self.sigs[chunk_q], theirs, self.sizes[chunk_q],
                                                    segment.sizes[chunk_r], cfg)
                    self.containing.offer(segment_number, chunk_q[inside], chunk_r[inside], estimate[inside],
                                          segment.clusters[chunk_r[inside]], segment.doc_ids[chunk_r[inside]])
            segment.release()


def band_candidates(segments: Sequence[PartSegment], keys: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """``(position in keys, ref)`` of every lake entry sharing a band key with ``keys``, each pair once: the
    first ``cap`` rows of each key in each segment, in (key, ref) order, as ``Query`` takes them."""
    order = np.argsort(keys, kind="stable")
    needles = keys[order]
    probe = band_lookup.Probe.of(needles)
    positions, refs = [np.empty(0, np.int64)], [np.empty(0, np.uint64)]
    for segment in segments:
        lo, count = segment.band_ranges(needles, probe)
        hit = np.flatnonzero(count)
        if len(hit):
            owner, at = ranges(lo[hit], np.minimum(count[hit], cap))
            positions.append(order[hit[owner]])
            refs.append(np.asarray(segment.refs[at], dtype=np.uint64))
    position, ref = np.concatenate(positions), np.concatenate(refs)
    pairs = np.lexsort((ref, position))
    position, ref = position[pairs], ref[pairs]
    once = np.r_[True, (position[1:] != position[:-1]) | (ref[1:] != ref[:-1])] if len(ref) else np.zeros(0, bool)
    return position[once], ref[once]

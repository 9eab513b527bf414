"""The lake's near-duplicate index as one object (``LakeIndex``): all live segments opened read-only,
the decisions and fingerprints it holds, the best matches of a batch, and writing a run's new entries.

Cost: a query is ``bands x segments`` calls of ``np.searchsorted`` over the batch's band keys on
the memory-mapped sorted keys (``batch x log(segment)`` each), then the signatures of the
candidate rows only, read with ``pread``. Mapped pages are released after each band
(``MADV_DONTNEED``), so the resident set follows the batch and one band of one segment, not the
lake: 1,000,000 indexed documents cost ~110 MB of RSS over the empty-index baseline while
resolving a 20,000-document batch (``bench/dedup.py``). On disk: ~1,450 bytes per document with
the defaults (512 signature, 768 band keys and rows, 25 set size, content hash and containment
decision, the rest ids and decisions). Each candidate is checked for both near-duplication and
containment (``contained_in``, using ``sizes.npy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flows.dedup.config import DedupConfig
from flows.dedup.fingerprint import band_keys, contained_in, estimated_jaccard, hash_words
from flows.dedup.index.segment import KIND_CODES, Segment, check_params, doc_id_keys, live_segments
from flows.dedup.index.write import write_arrays
from flows.dedup.records import DedupBatch, DedupDecisions, KeptDocuments, KnownDecisions, LakeMatches

# Candidate pairs verified at once: bounds the fetched signatures to ~32 MB.
_VERIFY_CHUNK = 1 << 16
# Candidate pairs gathered at once in a query (worst case, every bucket full): ~130 MB while deduplicated.
_CANDIDATE_PAIRS_AT_ONCE = 1 << 23


class LakeIndex:
    """All published segments of one lake's index, opened read-only."""

    def __init__(self, index_dir: Path, config: DedupConfig, segments: list[Segment]) -> None:
        self.index_dir = index_dir
        self.config = config
        self.segments = segments

    @classmethod
    def open(cls, index_dir: Path, config: DedupConfig) -> LakeIndex:
        """Open ``index_dir`` (``LAKE/_index``); a missing or empty directory is an empty index.

        Raises ``IncompatibleIndexError`` when a segment was built with other parameters.
        """
        segments = []
        for path, meta in live_segments(Path(index_dir)):
            check_params(path, meta, config)
            if int(meta["count"]) > 0:
                segments.append(Segment.load(path, meta))
        return cls(Path(index_dir), config, segments)

    def __len__(self) -> int:
        return sum(s.count for s in self.segments)

    def _locate(self, doc_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        # Segment and row of each doc_id (-1, -1 when absent); first segment by name wins.
        seg = np.full(len(doc_ids), -1, dtype=np.int64)
        row = np.full(len(doc_ids), -1, dtype=np.int64)
        keys = doc_id_keys(doc_ids)
        for s, segment in enumerate(self.segments):
            rows = segment.find_ids(doc_ids, keys)
            segment.release()
            new = (rows >= 0) & (seg < 0)
            seg[new], row[new] = s, rows[new]
        return seg, row

    def decisions_of(self, doc_ids: Sequence[str]) -> KnownDecisions:
        """The decisions the lake holds for ``doc_ids`` (``found`` marks which are there)."""
        seg, row = self._locate(doc_ids)
        known = KnownDecisions.none_found(len(doc_ids))
        known.found = seg >= 0
        for i in np.flatnonzero(known.found).tolist():
            segment, r = self.segments[int(seg[i])], int(row[i])
            known.dup_cluster[i] = segment.clusters[r].decode("utf-8")
            known.is_duplicate[i] = bool(segment.is_duplicate[r])
            known.dup_similarity[i] = float(segment.similarity[r])
            known.dup_kind[i] = KIND_CODES[int(segment.kinds[r])]
            known.dup_containment[i] = float(segment.containment[r])
        for segment in self.segments:
            segment.release()
        return known

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
        write_arrays(
            Path(segment_dir),
            self.config,
            doc_ids=[batch.doc_ids[i] for i in rows],
            clusters=[decisions.dup_cluster[i] for i in rows],
            signatures=signatures,
            is_duplicate=np.asarray(decisions.is_duplicate, dtype=bool)[sel],
            similarity=np.asarray(decisions.dup_similarity, dtype=np.float32)[sel],
            sizes=np.asarray(batch.sizes, dtype=np.uint32)[sel],
            hashes=hash_words([batch.content_hashes[i] for i in rows]),
            kinds=np.array([KIND_CODES.index(decisions.dup_kind[i]) for i in rows], dtype=np.uint8),
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

    def matches(self, segments: Sequence[Segment]) -> LakeMatches:
        rows = np.flatnonzero(self.segment >= 0)
        where = list(zip(self.segment[rows].tolist(), self.row[rows].tolist(), strict=True))
        return LakeMatches(
            query_rows=rows,
            doc_ids=[segments[s].doc_ids[r].decode("utf-8") for s, r in where],
            dup_cluster=[segments[s].clusters[r].decode("utf-8") for s, r in where],
            similarity=self.similarity[rows],
        )

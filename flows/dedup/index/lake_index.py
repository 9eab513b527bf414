"""The lake's near-duplicate index as one object (``LakeIndex``): all live segments opened read-only (those of
each partition, and older-format ones under ``segments/``), the decisions and fingerprints it holds, the best
matches of a batch, and writing a run's new entries.

Cost: a query sorts a block of the batch's band keys once and searches each partition's slice of them in
that partition's segments (sorted needles: ~25x faster than random ones), so it touches O(log L) segments
per partition (size-tiered compaction); a segment's Bloom filter and fence (``band_lookup``) keep the search
from reading most pages of its keys. It then reads the signatures of the candidates only, with ``pread``,
from their home partition. A run's dedup stages do the same work a partition at a time
(``flows.dedup.stages``: ``partition_segments``; ``query_unpartitioned`` for older segments).
Mapped pages are released as it goes (``MADV_DONTNEED``), so the resident set
follows the batch, not the lake. 100,000 queries against 3,000,000 entries: 2.4-3.5 s CPU with 16 partitions
vs 40 s for the format-2 index (``python -m bench.scale``). Each candidate is checked for both
near-duplication and containment (``contained_in``, using ``sizes.npy``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from flows.dedup.config import DedupConfig
from flows.dedup.fingerprint import hash_words
from flows.dedup.index.files import doc_id_keys, encode
from flows.dedup.index.layout import (
    check_index,
    check_segment,
    live_partitions,
    partition_name,
    partition_of,
    write_index_file,
)
from flows.dedup.index.part import PartSegment
from flows.dedup.index.query import Query
from flows.dedup.index.segment import KIND_CODES, Segment, check_params, live_in, live_segments
from flows.dedup.index.write import Entries, write_partitioned
from flows.dedup.records import DedupBatch, DedupDecisions, KeptDocuments, KnownDecisions, LakeMatches


def open_segments(index_dir: Path, config: DedupConfig) -> list[Segment | PartSegment]:
    """Every live segment with entries or band rows: older-format ones first, then each partition's."""
    segments: list[Segment | PartSegment] = []
    for path, meta in live_segments(index_dir):
        check_params(path, meta, config)
        if int(meta["count"]) > 0:
            segments.append(Segment.load(path, meta))
    for live in live_partitions(index_dir, config).values():
        segments += [PartSegment.load(path, meta) for path, meta in live if int(meta["count"]) or int(meta["rows"])]
    return segments


class LakeIndex:
    """All published segments of one lake's index, opened read-only."""

    def __init__(self, index_dir: Path, config: DedupConfig, segments: Sequence[Segment | PartSegment],
                 has_index_file: bool = False) -> None:
        self.index_dir = Path(index_dir)
        self.config = config
        self.segments = list(segments)
        self.has_index_file = has_index_file
        """Whether ``index.json`` exists: ``write_segment`` stages one with the run's segment when not."""

    @classmethod
    def open(cls, index_dir: Path, config: DedupConfig) -> LakeIndex:
        """Open ``index_dir`` (``LAKE/_index``); a missing or empty directory is an empty index.

        Raises ``IncompatibleIndexError`` when it was built with other parameters or partitions.
        """
        info = check_index(Path(index_dir), config)
        return cls(Path(index_dir), config, open_segments(Path(index_dir), config), info is not None)

    @classmethod
    def open_partitions(cls, index_dir: Path, config: DedupConfig, partitions: Iterable[int]) -> LakeIndex:
        """Open only the live segments of ``partitions`` (format 3): what a task of one partition, or a lookup of
        doc_ids homed in a few, reads. Older-format segments are not opened (``open`` opens them)."""
        index_dir = Path(index_dir)
        info = check_index(index_dir, config)
        segments: list[Segment | PartSegment] = []
        for part in sorted(set(partitions)):
            for path, meta in live_in(index_dir / partition_name(part)):
                check_segment(path, meta, part, config, index_dir)
                if int(meta["count"]) or int(meta["rows"]):
                    segments.append(PartSegment.load(path, meta))
        return cls(index_dir, config, segments, info is not None)

    def close(self) -> None:
        """Unmap every segment (the index is not used after this)."""
        for segment in self.segments:
            segment.close()

    def __len__(self) -> int:
        return sum(s.count for s in self.segments)

    def locate(self, doc_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Segment number and row of each doc_id (-1, -1 when absent); first found wins (older formats first)."""
        seg = np.full(len(doc_ids), -1, dtype=np.int64)
        row = np.full(len(doc_ids), -1, dtype=np.int64)
        keys = doc_id_keys(doc_ids)
        home = partition_of(keys, self.config.partitions)
        for s, segment in enumerate(self.segments):
            if isinstance(segment, PartSegment):
                mine = np.flatnonzero((home == segment.partition) & (seg < 0))
                rows = np.full(len(doc_ids), -1, dtype=np.int64)
                rows[mine] = segment.find_ids([doc_ids[i] for i in mine.tolist()], keys[mine])
            else:
                rows = segment.find_ids(doc_ids, keys)
            segment.release()
            new = (rows >= 0) & (seg < 0)
            seg[new], row[new] = s, rows[new]
        return seg, row

    def decisions_of(self, doc_ids: Sequence[str]) -> KnownDecisions:
        """The decisions the lake holds for ``doc_ids`` (``found`` marks which are there)."""
        seg, row = self.locate(doc_ids)
        known = KnownDecisions.none_found(len(doc_ids))
        known.found = seg >= 0
        for s in np.unique(seg[known.found]).tolist():
            segment, mine = self.segments[s], np.flatnonzero(seg == s)
            rows = row[mine]
            for i, cluster, kind in zip(mine.tolist(), segment.clusters[rows], segment.kinds[rows], strict=True):
                known.dup_cluster[i] = bytes(cluster).decode("utf-8")
                known.dup_kind[i] = KIND_CODES[int(kind)]
            known.is_duplicate[mine] = np.asarray(segment.is_duplicate[rows], dtype=bool)
            known.dup_similarity[mine] = segment.similarity[rows]
            known.dup_containment[mine] = segment.containment[rows]
            segment.release()
        return known

    def signatures_of(self, doc_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(found, signatures)`` of lake documents; rows not found are all-zero."""
        kept = self.kept_documents(doc_ids)
        return kept.found, kept.signatures

    def kept_documents(self, doc_ids: Sequence[str]) -> KeptDocuments:
        """Signatures, set sizes and content hashes of lake documents; rows not found are all-zero."""
        seg, row = self.locate(doc_ids)
        out = KeptDocuments(seg >= 0, np.zeros((len(doc_ids), self.config.num_perm), dtype=np.uint32),
                            np.zeros(len(doc_ids), dtype=np.uint32), np.zeros((len(doc_ids), 2), dtype=np.uint64))
        for s in np.unique(seg[seg >= 0]).tolist():
            segment, mine = self.segments[s], np.flatnonzero(seg == s)
            out.signatures[mine] = segment.read_signatures(row[mine])
            out.sizes[mine] = segment.sizes[row[mine]]
            out.hashes[mine] = segment.hashes[row[mine]]
            segment.release()
        return out

    def query(self, sigs: np.ndarray, sizes: np.ndarray) -> tuple[LakeMatches, LakeMatches]:
        """``(near, containing)``: each query's most similar lake document (ties: smallest cluster id, then
        smallest doc_id), if its estimated Jaccard is >= threshold, and the lake document that best contains
        it (``contained_in``; highest estimated containment, same ties). ``sizes`` are the queries' distinct
        shingle counts.

        Candidates are verified a chunk of queries at a time and only the best match per query is kept, so
        a lake holding many copies of a page costs time, not memory (keeping every match once took ~45 KB
        per query document against a lake with 60 copies of each page).
        """
        return Query(self.segments, self.config, sigs, np.asarray(sizes, dtype=np.int64)).run()

    def partition_segments(self, part: int) -> list[PartSegment]:
        """Partition ``part``'s segments (format 3)."""
        return [s for s in self.segments if isinstance(s, PartSegment) and s.partition == part]

    def query_unpartitioned(self, sigs: np.ndarray, sizes: np.ndarray) -> tuple[LakeMatches, LakeMatches]:
        """``query`` against the band rows a run's partition tasks do not search (``flows.dedup.stages``): those
        of older-format segments and of an earlier banding. Nothing to do (the usual case) costs nothing."""
        banding = (self.config.bands, self.config.rows)
        if all(isinstance(s, PartSegment) and (s.banding == banding or not s.rows) for s in self.segments):
            return LakeMatches.none(), LakeMatches.none()
        return Query(self.segments, self.config, sigs, np.asarray(sizes, dtype=np.int64), banding).run()

    def write_segment(self, root: Path, name: str, batch: DedupBatch, decisions: DedupDecisions) -> int:
        """Write the batch's entries not yet in the lake as segment ``name`` of each partition that gets rows,
        under ``root`` (laid out like ``INDEX``: ``root/pNNNN/name``); return their count.

        Publish with :func:`publish_segment`, or the lake's commit (``staged_moves``). A new index gets its
        ``index.json`` staged too. When every document is already in the lake nothing is written and 0 is
        returned: there is nothing to publish.
        """
        seg, _ = self.locate(batch.doc_ids)
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
        entries = Entries(
            signatures=signatures[sel] if len(rows) < len(batch) else signatures,
            doc_ids=encode([batch.doc_ids[i] for i in rows]),
            clusters=encode([decisions.dup_cluster[i] for i in rows]),
            is_duplicate=np.asarray(decisions.is_duplicate, dtype=bool)[sel],
            similarity=np.asarray(decisions.dup_similarity, dtype=np.float32)[sel],
            sizes=np.asarray(batch.sizes, dtype=np.uint32)[sel],
            hashes=hash_words([batch.content_hashes[i] for i in rows]),
            kinds=np.array([KIND_CODES.index(decisions.dup_kind[i]) for i in rows], dtype=np.uint8),
            containment=np.asarray(decisions.dup_containment, dtype=np.float32)[sel],
        )
        if not self.has_index_file:
            write_index_file(Path(root), self.config)
        write_partitioned(Path(root), name, self.config, entries)
        return len(rows)

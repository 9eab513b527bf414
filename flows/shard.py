"""One shard through the per-shard stages: read, normalize, extract, score, fingerprint, stage to Parquet.

Plain functions over a ``ShardBatch``, no Prefect (``flows.ingest`` runs them as tasks). Quality is scored
before the run's dedup decision (``flows.run.dedup_stage``) because the keep policy prefers the better
document of a cluster.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from flows import lake as lakefs
from flows.config import IngestConfig
from flows.dedup import DedupConfig, content_hash, fingerprints
from flows.document import Document, Reject, reject
from flows.extract import ExtractConfig, StartedExtraction, abandon_extraction, finish_extraction, start_extraction
from flows.forget import TAKEN_DOWN, Blocklist
from flows.language import detect_language
from flows.normalize import normalize_batch, normalize_chars, normalize_markup
from flows.quality import SIGNAL_NAMES, QualityConfig, score_batch
from flows.read import InputFile, ReadConfig, iter_units


@dataclass
class ShardBatch:
    """One shard between stages: its documents, its rejects so far, and per-stage counts."""

    number: int
    docs: list[Document]
    rejects: list[Reject] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    signatures: np.ndarray | None = None
    n_shingles: np.ndarray | None = None
    blocked: Blocklist | None = None
    """What the lake's takedowns block (``siftlake forget``): checked when read and after fingerprinting."""


@dataclass
class ShardSummary:
    """What a staged shard reports back to the flow (small: no documents)."""

    number: int
    documents: int
    rejects: int
    counts: Counter[str]
    seconds: dict[str, float]
    reasons: Counter[str]


class _Timer:
    def __init__(self, batch: ShardBatch, stage: str) -> None:
        self.batch, self.stage = batch, stage

    def __enter__(self) -> None:
        self.start = time.perf_counter()
        self.batch.counts[f"{self.stage}_in"] += len(self.batch.docs)

    def __exit__(self, *exc: object) -> None:
        self.batch.seconds[self.stage] += time.perf_counter() - self.start
        self.batch.counts[f"{self.stage}_out"] += len(self.batch.docs)


def _guarded(batch: ShardBatch, stage: str, apply: Callable[[list[Document]], object]) -> None:
    """Apply a stage to the shard; if it raises, apply it document by document and reject the failures.

    A bug or a pathological document then costs that document, with its reason, not the whole run.
    """
    try:
        apply(batch.docs)
        return
    except Exception:
        pass
    kept: list[Document] = []
    for doc in batch.docs:
        try:
            apply([doc])
            kept.append(doc)
        except Exception as err:
            batch.rejects.append(reject(doc, stage, f"{stage}_error", f"{type(err).__name__}: {err}"))
    batch.docs = kept


# The known-units store as this process opened it: its manifest is read again by each shard (one small read) and
# the rest (a bucket lake's fences and minus lists) loaded again only when the manifest changed.
_KNOWN: dict[str, lakefs.KnownUnits] = {}
_KNOWN_LOCK = threading.Lock()


def load_known_units(paths: lakefs.RunPaths) -> lakefs.KnownUnits:
    """The lake's known-units store, opened for lookups (``flows.lake.units``): never a list of every id."""
    with _KNOWN_LOCK:
        opened = lakefs.KnownUnits.open(paths.lake, _KNOWN.get(paths.lake.digest))
        _KNOWN.clear()  # another lake's
        _KNOWN[paths.lake.digest] = opened
        return opened


# The block list of the run this process works for: loaded by its first shard, not by every shard (on a bucket
# lake that is two listings per shard, and a takedown's fingerprints to download again).
_BLOCKLIST: dict[tuple[str, str], Blocklist] = {}
_BLOCKLIST_LOCK = threading.Lock()


def load_blocklist(paths: lakefs.RunPaths) -> Blocklist:
    """What the lake's takedowns block, once per run and process: it cannot change during the run (a takedown
    takes the lake's lock)."""
    key = (paths.lake.digest, paths.run_id)
    with _BLOCKLIST_LOCK:
        if key not in _BLOCKLIST:
            _BLOCKLIST.clear()  # an earlier run's
            _BLOCKLIST[key] = Blocklist.load(paths.lake)
        return _BLOCKLIST[key]


def read_chunks(number: int, files: list[InputFile], config: ReadConfig, known: lakefs.KnownUnits | None,
                options: Mapping[str, Any] | None = None, chunk_bytes: int = 0,
                blocked: Blocklist | None = None) -> Iterator[ShardBatch]:
    """Read a shard's units in chunks of about ``chunk_bytes`` of text (default ``config.shard_bytes``),
    leaving out those the lake already holds (same place, same bytes: ``known``, looked up a chunk's worth of
    units at a time); those ``blocked`` blocks by doc_id or URL are rejects (``taken_down``), and the chunks carry
    ``blocked`` for the check after fingerprinting.

    Chunks also bound memory where a single file is larger than a shard (a compressed JSONL or a WARC
    file, which cannot be cut into shards): a worker holds a few chunks of it at a time, not the file.
    Every shard yields at least one chunk; the last one carries the shard's file count.
    """
    chunk_bytes = chunk_bytes or config.shard_bytes
    units = _looked_up(iter_units(files, config, options), known, chunk_bytes)
    exhausted = False
    while not exhausted:
        start = time.perf_counter()
        batch, size = ShardBatch(number, [], blocked=blocked or None), 0
        for unit, held in units:
            batch.counts["units"] += 1
            if held:
                batch.counts["skipped_known"] += 1
            elif isinstance(unit, Document) and (why := _blocked_unit(batch.blocked, unit)):
                batch.rejects.append(reject(unit, "read", TAKEN_DOWN, why))
            elif isinstance(unit, Document):
                batch.docs.append(unit)
                size += len(unit.text)
                if size >= chunk_bytes:
                    break
            else:
                batch.rejects.append(unit)
        else:
            exhausted = True
            batch.counts["files"] = sum(1 for item in files if item.start == 0)  # a piece of a file is not a file
        batch.counts["read_out"] = len(batch.docs)
        batch.seconds["read"] = time.perf_counter() - start
        yield batch


# A lookup in the known-units store takes at most this many units (a file of rejects has no text to count).
LOOKUP_UNITS = 4096


def _looked_up(units: Iterator[Document | Reject], known: lakefs.KnownUnits | None,
               group_bytes: int) -> Iterator[tuple[Document | Reject, bool]]:
    """Each unit and whether the lake holds it, looked up in groups of about ``group_bytes`` of text: one batch
    of lookups (on a bucket lake, one round of ranged reads) per group, a group ahead of the chunk being read."""
    group: list[Document | Reject] = []
    size = 0
    for unit in units:
        group.append(unit)
        size += len(unit.text) if isinstance(unit, Document) else 0
        if size >= group_bytes or len(group) >= LOOKUP_UNITS:
            yield from _known_flags(group, known)
            group, size = [], 0
    yield from _known_flags(group, known)


def _known_flags(group: list[Document | Reject],
                 known: lakefs.KnownUnits | None) -> Iterator[tuple[Document | Reject, bool]]:
    if known is None or not group:
        return zip(group, [False] * len(group), strict=True)
    ids = [unit.doc_id if isinstance(unit, Document) else unit.unit_id for unit in group]
    return zip(group, known.contains(ids).tolist(), strict=True)


def _blocked_unit(blocked: Blocklist | None, doc: Document) -> str | None:
    return blocked.unit_reason(doc.doc_id, doc.url) if blocked is not None else None


def read_stage(number: int, files: list[InputFile], config: ReadConfig, known: lakefs.KnownUnits | None,
               options: Mapping[str, Any] | None = None, blocked: Blocklist | None = None) -> ShardBatch:
    """The whole shard as one batch (``read_chunks`` joined): for running each stage as its own task."""
    whole = ShardBatch(number, [], blocked=blocked or None)
    for chunk in read_chunks(number, files, config, known, options, blocked=blocked):
        whole.docs += chunk.docs
        whole.rejects += chunk.rejects
        whole.counts.update(chunk.counts)
        whole.seconds["read"] += chunk.seconds["read"]
    return whole


def normalize_stage(batch: ShardBatch) -> ShardBatch:
    """Text units: characters and layout. HTML pages: only what extraction needs (``normalize_markup``);
    extraction normalizes the text it keeps, so the costly repairs run on that text, not on whole pages."""
    def normalize(docs: list[Document]) -> None:
        normalize_batch([d for d in docs if d.kind != "html"])
        for doc in docs:
            if doc.kind == "html":
                doc.text = normalize_markup(doc.text)

    with _Timer(batch, "normalize"):
        _guarded(batch, "normalize", normalize)
    return batch


def extract_stage(batch: ShardBatch, config: ExtractConfig) -> ShardBatch:
    return finish_extract_stage(start_extract_stage(batch, config))


@dataclass
class ExtractingBatch:
    """A batch whose pages are being extracted in this thread's extraction process."""

    batch: ShardBatch
    started: StartedExtraction


def start_extract_stage(batch: ShardBatch, config: ExtractConfig) -> ExtractingBatch:
    """Hand the batch's pages to the extraction process and return at once (see ``process_shard``)."""
    start = time.perf_counter()
    started = start_extraction(batch.docs, config)
    batch.seconds["extract"] += time.perf_counter() - start
    return ExtractingBatch(batch, started)


def finish_extract_stage(extracting: ExtractingBatch) -> ShardBatch:
    batch = extracting.batch
    with _Timer(batch, "extract"):
        batch.docs, rejects = finish_extraction(extracting.started)
        batch.rejects.extend(rejects)
        for doc in batch.docs:  # a title found in the page was not normalized with it
            if doc.title:
                doc.title = normalize_chars(doc.title)
    return batch


def score_stage(batch: ShardBatch, config: QualityConfig) -> ShardBatch:
    """Language, then quality signals and score (signals are data; thresholds are the reader's)."""
    def score(docs: list[Document]) -> None:
        for doc in docs:
            doc.lang, doc.lang_score = detect_language(doc.text)
        score_batch(docs, config)

    with _Timer(batch, "score"):
        _guarded(batch, "score", score)
    return batch


def fingerprint_stage(batch: ShardBatch, config: DedupConfig) -> ShardBatch:
    """Content hash and MinHash signature of each document: the dedup stage's per-shard half."""
    def fingerprint(docs: list[Document]) -> None:
        for doc in docs:
            doc.content_hash = content_hash(doc.text)
        batch.signatures, batch.n_shingles = fingerprints([d.text for d in docs], config)

    with _Timer(batch, "fingerprint"):
        _guarded(batch, "fingerprint", fingerprint)
        # A document was dropped while signing: sign the survivors together, aligned with the docs.
        if batch.signatures is None or len(batch.signatures) != len(batch.docs):
            fingerprint(batch.docs)
        _take_down(batch, config)
    return batch


def _take_down(batch: ShardBatch, config: DedupConfig) -> None:
    """Reject (stage ``dedup``, ``taken_down``) the documents whose URL, found in the page, or whose text a
    takedown blocks: copies of taken-down documents at any URL (``siftlake forget --with-copies``)."""
    if not batch.blocked or batch.signatures is None or batch.n_shingles is None or not batch.docs:
        return
    copies = batch.blocked.copy_reasons(batch.signatures, batch.n_shingles, config)
    why = [_blocked_unit(batch.blocked, doc) or copy for doc, copy in zip(batch.docs, copies, strict=True)]
    if not any(why):
        return
    batch.rejects += [reject(doc, "dedup", TAKEN_DOWN, w) for doc, w in zip(batch.docs, why, strict=True) if w]
    keep = np.array([w is None for w in why], dtype=bool)
    batch.docs = [doc for doc, k in zip(batch.docs, keep.tolist(), strict=True) if k]
    batch.signatures, batch.n_shingles = batch.signatures[keep], batch.n_shingles[keep]


# A shard is read in chunks of about this share of ``read.shard_bytes``, so that extraction of one chunk
# overlaps the reading, scoring and staging of its neighbours (``process_shard``).
CHUNKS_PER_SHARD = 4


def process_shard(number: int, files: list[InputFile], config: IngestConfig, paths: lakefs.RunPaths) -> ShardSummary:
    """Every stage of one shard, chunk by chunk, staged into the run's folder.

    Pipelined so the extraction process never waits for this thread: chunk k+1 is read, normalized and
    queued for extraction before chunk k's results are collected, scored, fingerprinted and staged; the
    process extracts k+1 meanwhile. Without it, the extraction processes idled a quarter of the time.
    """
    stager = ShardStager(number, paths)
    known, blocked = load_known_units(paths), load_blocklist(paths)
    chunk_bytes = max(1, config.read.shard_bytes // CHUNKS_PER_SHARD)
    extracting: ExtractingBatch | None = None
    try:
        for batch in read_chunks(number, files, config.read, known, config.storage.options, chunk_bytes, blocked):
            following = start_extract_stage(normalize_stage(batch), config.extract)
            if extracting is not None:
                stager.add(_after_extraction(extracting, config))
            extracting = following
        assert extracting is not None, "read_chunks yields at least one chunk"
        stager.add(_after_extraction(extracting, config))
    except BaseException:
        abandon_extraction()  # pages still queued must not answer for the next shard's
        raise
    return stager.finish()


def _after_extraction(extracting: ExtractingBatch, config: IngestConfig) -> ShardBatch:
    batch = finish_extract_stage(extracting)
    return fingerprint_stage(score_stage(batch, config.quality), config.dedup)


class ShardStager:
    """Writes a shard's processed chunks into the run's staging folder, one Parquet row group each.

    The shard counts as staged only once ``finish`` has renamed its files into place: a shard cut
    off halfway leaves nothing a resumed run would take for done.
    """

    def __init__(self, number: int, paths: lakefs.RunPaths) -> None:
        self.number, self.paths = number, paths
        self.target = paths.shard_file(number)
        self.partial = self.target.with_name(f".{self.target.name}.partial")
        self.writer: pq.ParquetWriter | None = None
        self.documents = 0
        self.rejects: list[Reject] = []
        self.counts: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def add(self, batch: ShardBatch) -> None:
        assert batch.signatures is not None and batch.n_shingles is not None, \
            "fingerprint_stage must run before a chunk is staged"
        start = time.perf_counter()
        table = lakefs.staged_table(batch.docs, batch.signatures, batch.n_shingles, SIGNAL_NAMES)
        if self.writer is None:
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.partial, table.schema, compression="zstd")
        self.writer.write_table(table)
        self.documents += len(batch.docs)
        self.rejects += batch.rejects
        self.counts.update(batch.counts)
        for stage, seconds in batch.seconds.items():
            self.seconds[stage] += seconds
        self.seconds["stage"] += time.perf_counter() - start

    def finish(self) -> ShardSummary:
        """Put the shard's files in place; the shard is then done for good."""
        assert self.writer is not None, "a shard has at least one chunk"
        start = time.perf_counter()
        self.writer.close()
        rejects_file = self.paths.shard_rejects_file(self.number)
        lakefs.write_parquet_atomic(lakefs.rejects_table(self.rejects, self.paths.run_id), rejects_file)
        self.seconds["stage"] += time.perf_counter() - start
        summary = ShardSummary(self.number, self.documents, len(self.rejects), self.counts, dict(self.seconds),
                               Counter(f"{r.stage}/{r.reason}" for r in self.rejects))
        # The summary is kept beside the shard so a resumed run still reports the whole run's counts. It is
        # whole before the shard's rename, which marks the shard done: a kill in between leaves it undone.
        summary_file = self.paths.shard_summary_file(self.number)
        partial_summary = summary_file.with_name(f".{summary_file.name}.partial")
        partial_summary.write_text(json.dumps(
            {"counts": summary.counts, "seconds": summary.seconds, "reasons": summary.reasons}))
        os.replace(partial_summary, summary_file)
        os.replace(self.partial, self.target)
        # On an object store the summary goes last: a shard is staged there once its summary is.
        lakefs.persist(self.paths, self.target, rejects_file, summary_file)
        return summary


def stage_shard(batch: ShardBatch, paths: lakefs.RunPaths) -> ShardSummary:
    """Write a processed shard, whole, into the run's staging folder (see ``ShardStager``)."""
    stager = ShardStager(batch.number, paths)
    stager.add(batch)
    return stager.finish()


def staged_shards(paths: lakefs.RunPaths) -> set[int]:
    """Shard numbers already staged by this run (a resumed run skips them), here or on the lake's store."""
    lakefs.pull_staged(paths)
    return lakefs.done_shards(paths)

"""What stays blocked after a takedown, and the checks a run makes against it (reject reason ``taken_down``).

In the lake (each file written by one ``siftlake forget``, moved in by its commit)::

    LAKE/_takedowns/blocked/<forget_id>.parquet        kind (url, domain, doc_id) and key of each blocked entry
    LAKE/_takedowns/fingerprints/<forget_id>.parquet   doc_id, MinHash signature and set size of each document
                                                       removed with --with-copies
    LAKE/_takedowns/log/<forget_id>.json               when, why, which list, counts, files rewritten

A run loads them once per shard (``Blocklist.load``; they do not change while it holds the lake): a unit
whose doc_id or URL is blocked is rejected when read, one whose URL (found in the page) or text is blocked
after fingerprinting. A text is blocked when it is an exact or near copy of a blocked fingerprint
(estimated Jaccard >= ``dedup.threshold``), contained in one, or contains one (``contained_in``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flows.dedup import DedupConfig, band_keys, contained_in, estimated_jaccard
from flows.forget.lists import domains_of, url_host, url_key
from flows.lake import TAKEDOWNS
from flows.storage import Store

TAKEN_DOWN = "taken_down"
"""The reject reason of a unit a takedown blocks."""
BLOCKED = f"{TAKEDOWNS}/blocked"
FINGERPRINTS = f"{TAKEDOWNS}/fingerprints"
LOG = f"{TAKEDOWNS}/log"
BLOCKED_SCHEMA = pa.schema([("kind", pa.string()), ("key", pa.string()), ("forget_id", pa.string())])
FINGERPRINTS_SCHEMA = pa.schema([("doc_id", pa.string()), ("signature", pa.binary()), ("n_shingles", pa.uint32()),
                                 ("forget_id", pa.string())])
ENTRY_KINDS = {"urls": "url", "domains": "domain", "doc_ids": "doc_id"}


def _tables(lake: Store, prefix: str) -> Iterator[pa.Table]:
    for key in lake.files(prefix):
        if key.endswith(".parquet") and not key.rsplit("/", 1)[-1].startswith((".", "_")):
            with lake.fs.open(lake.path(key), "rb") as handle:
                yield pq.read_table(handle)


@dataclass(frozen=True)
class Blocklist:
    """Every URL, domain, doc_id and fingerprint the lake's takedowns block."""

    urls: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    doc_ids: frozenset[str] = frozenset()
    signatures: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.uint32))
    sizes: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint32))

    @classmethod
    def load(cls, lake: Store) -> Blocklist:
        entries: dict[str, set[str]] = {"url": set(), "domain": set(), "doc_id": set()}
        for table in _tables(lake, BLOCKED):
            for kind, key in zip(table.column("kind").to_pylist(), table.column("key").to_pylist(), strict=True):
                entries.setdefault(kind, set()).add(key)
        prints = [t for t in _tables(lake, FINGERPRINTS) if t.num_rows]
        sigs, sizes = np.empty((0, 0), np.uint32), np.empty(0, np.uint32)
        if prints:
            table = pa.concat_tables(prints)
            raw = table.column("signature").to_pylist()
            width = len(raw[0]) // 4
            rows = np.column_stack([np.frombuffer(b"".join(raw), np.uint32).reshape(-1, width),
                                    table.column("n_shingles").to_numpy().astype(np.uint32)])
            unique = np.unique(rows, axis=0)  # copies removed together share their fingerprint
            sigs, sizes = np.ascontiguousarray(unique[:, :-1]), unique[:, -1]
        return cls(frozenset(entries["url"]), frozenset(entries["domain"]), frozenset(entries["doc_id"]), sigs, sizes)

    def __bool__(self) -> bool:
        return bool(self.urls or self.domains or self.doc_ids or len(self.sizes))

    def unit_reason(self, doc_id: str, url: str | None) -> str | None:
        """Why a unit is blocked by its doc_id or URL (a sentence for ``detail``), or None."""
        if doc_id in self.doc_ids:
            return f"this unit (doc_id {doc_id}) was taken down (siftlake forget)"
        if url is None or not (self.urls or self.domains):
            return None
        if url_key(url) in self.urls:
            return f"its URL {url[:200]} was taken down (siftlake forget)"
        host = url_host(url)
        for domain in domains_of(host) if host else []:
            if domain in self.domains:
                return f"its URL {url[:200]} is on the domain {domain}, taken down (siftlake forget)"
        return None

    def copy_reasons(self, sigs: np.ndarray, sizes: np.ndarray, config: DedupConfig) -> list[str | None]:
        """For each document (its signature and distinct shingle count): why its text is blocked, or None."""
        out: list[str | None] = [None] * len(sigs)
        if not len(self.sizes) or not len(sigs) or self.signatures.shape[1] != sigs.shape[1]:
            return out
        q, b = self._candidates(np.asarray(sigs, np.uint32), config)
        if not len(q):
            return out
        mine, theirs = np.asarray(sigs, np.uint32)[q], self.signatures[b]
        similar = estimated_jaccard(mine, theirs)
        inside, _ = contained_in(mine, theirs, np.asarray(sizes)[q], self.sizes[b], config)
        holds, _ = contained_in(theirs, mine, self.sizes[b], np.asarray(sizes)[q], config)
        for i, row in enumerate(q.tolist()):
            if out[row] is not None:
                continue
            if similar[i] >= config.threshold:
                out[row] = f"a copy (estimated Jaccard {similar[i]:.2f}) of a document taken down (siftlake forget)"
            elif inside[i]:
                out[row] = "an excerpt of a document taken down (siftlake forget)"
            elif holds[i]:
                out[row] = "its text contains a document taken down (siftlake forget)"
        return out

    def _candidates(self, sigs: np.ndarray, config: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
        """``(document row, blocked row)`` pairs sharing an LSH band, each once (few: only copies share one)."""
        mine, theirs = band_keys(sigs, config), band_keys(self.signatures, config)
        pairs: set[tuple[int, int]] = set()
        for band in range(config.bands):
            order = np.argsort(theirs[band], kind="stable")
            ranked = theirs[band][order]
            lo = np.searchsorted(ranked, mine[band], side="left")
            hi = np.minimum(np.searchsorted(ranked, mine[band], side="right"), lo + config.max_candidates_per_band)
            for row in np.flatnonzero(hi > lo).tolist():
                pairs.update((row, int(b)) for b in order[lo[row] : hi[row]])
        if not pairs:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        ordered = np.array(sorted(pairs), dtype=np.int64)
        return ordered[:, 0], ordered[:, 1]

"""The records duplicate detection passes around: a run's batch, the decisions on it, and what the lake's
index answers (the decisions it holds, its best matches, the kept documents' fingerprints)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol

import numpy as np

DUP_KINDS: tuple[str, ...] = ("exact", "near", "contained")
"""Values of ``dup_kind`` for duplicates (kept documents have none): the same text as the kept
document, a near-duplicate of it (estimated Jaccard chain), or mostly contained in it."""


@dataclass
class DedupBatch:
    """One run's accepted documents (all shards concatenated); arrays aligned by row."""

    doc_ids: list[str]
    content_hashes: list[str]
    signatures: np.ndarray
    quality: np.ndarray
    lengths: np.ndarray
    sizes: np.ndarray
    """Distinct shingles of each document (``fingerprints``): containment needs the set sizes."""

    def __len__(self) -> int:
        return len(self.doc_ids)


@dataclass
class DedupDecisions:
    """The outcome for each batch row."""

    dup_cluster: list[str]
    """``doc_id`` of the kept document of the row's cluster (its own when unique or kept)."""
    is_duplicate: np.ndarray
    """True for every cluster member except the kept one."""
    dup_similarity: np.ndarray
    """Estimated Jaccard similarity to the kept document (1.0 for kept documents)."""
    dup_kind: list[str | None]
    """One of ``DUP_KINDS`` for duplicates, None for kept documents."""
    dup_containment: np.ndarray
    """Estimated share of the row's shingles found in the kept document (1.0 for kept documents)."""

    @classmethod
    def all_kept(cls, doc_ids: Sequence[str]) -> DedupDecisions:
        """Every row kept, each the only member of its cluster ``doc_ids[row]``."""
        n = len(doc_ids)
        return cls(
            dup_cluster=list(doc_ids),
            is_duplicate=np.zeros(n, dtype=bool),
            dup_similarity=np.ones(n, dtype=np.float64),
            dup_kind=[None] * n,
            dup_containment=np.ones(n, dtype=np.float64),
        )

    def copy_rows(self, rows: Sequence[int], source: DedupDecisions) -> None:
        """Take ``source``'s decisions for ``rows`` (the same row numbers in both)."""
        for name in _DECISION_FIELDS:
            mine, theirs = getattr(self, name), getattr(source, name)
            for row in rows:
                mine[row] = theirs[row]


_DECISION_FIELDS = tuple(f.name for f in fields(DedupDecisions))


@dataclass
class KnownDecisions(DedupDecisions):
    """The decisions the lake already holds for some doc_ids (see ``LakeIndex.decisions_of``)."""

    found: np.ndarray
    """Which rows the lake has; the others read as kept, with an empty ``dup_cluster``."""

    @classmethod
    def none_found(cls, n: int) -> KnownDecisions:
        """``n`` rows, none of them in the lake (yet)."""
        return cls(**vars(DedupDecisions.all_kept([""] * n)), found=np.zeros(n, dtype=bool))


@dataclass
class LakeMatches:
    """The best verified lake match of each query row that has one (see ``LakeIndex.query``)."""

    query_rows: np.ndarray
    doc_ids: list[str]
    dup_cluster: list[str]
    similarity: np.ndarray
    """Estimated Jaccard for near matches; estimated containment of the query for containing ones."""

    @classmethod
    def none(cls) -> LakeMatches:
        """No match."""
        return cls(np.empty(0, np.int64), [], [], np.empty(0))


@dataclass
class KeptDocuments:
    """What the index holds about some lake documents (``found`` marks which)."""

    found: np.ndarray
    signatures: np.ndarray
    sizes: np.ndarray
    hashes: np.ndarray
    """``hash_words`` of their content_hash."""


class KeptLookup(Protocol):
    """Where the decision reads the kept lake documents a run's rows join: the index (``LakeIndex``), or what the
    kept tasks of a run's dedup stages staged (``flows.dedup.stages.StagedKept``)."""

    def kept_documents(self, doc_ids: Sequence[str]) -> KeptDocuments: ...

"""The records: decisions start as all kept, and the lake's known decisions are decisions with ``found``."""

from __future__ import annotations

import numpy as np

from flows.dedup.records import DedupDecisions, KnownDecisions


def test_known_decisions_are_decisions_copied_row_by_row() -> None:
    decisions = DedupDecisions.all_kept(["a", "b", "c"])
    assert decisions.dup_cluster == ["a", "b", "c"] and decisions.dup_kind == [None] * 3
    assert not decisions.is_duplicate.any() and (decisions.dup_similarity == 1.0).all()
    known = KnownDecisions.none_found(3)
    assert isinstance(known, DedupDecisions) and not known.found.any() and known.dup_cluster == ["", "", ""]
    known.found[2] = True
    known.dup_cluster[2], known.is_duplicate[2], known.dup_kind[2] = "a", True, "near"
    known.dup_similarity[2], known.dup_containment[2] = 0.7, 0.8
    decisions.copy_rows(np.flatnonzero(known.found).tolist(), known)
    assert decisions.dup_cluster == ["a", "b", "a"] and decisions.dup_kind == [None, None, "near"]
    assert decisions.is_duplicate.tolist() == [False, False, True]
    assert decisions.dup_similarity.tolist() == [1.0, 1.0, 0.7]
    assert decisions.dup_containment.tolist() == [1.0, 1.0, 0.8]

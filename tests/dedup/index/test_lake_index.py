"""LakeIndex: an empty index, queries over memory-mapped candidates, one entry per doc_id."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from flows.dedup import LakeIndex, estimated_jaccard, resolve
from flows.dedup.index import query
from flows.dedup.index.column import Column
from tests.dedup.helpers import CONFIG, FIRST, article, batch_of, edit, run


def test_missing_directory_is_an_empty_index(index_dir: Path) -> None:
    index = LakeIndex.open(index_dir, CONFIG)
    assert len(index) == 0
    assert not resolve(FIRST, index, CONFIG).is_duplicate[[0, 2, 3]].any()


def test_query_fetches_only_candidates(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    index = LakeIndex.open(index_dir, CONFIG)
    probe = batch_of(["q"], [article(2)])
    matches, containing = index.query(probe.signatures, probe.sizes)
    assert containing.doc_ids == []  # an exact copy is not "contained": the container must be larger
    assert matches.doc_ids == ["b1"] and matches.dup_cluster == ["b1"]
    assert np.array_equal(matches.similarity, [1.0])
    # Segments are read on demand, not loaded: a segment holds its arrays' layout only (no array, no descriptor).
    segment = next(s for s in index.segments if s.count)
    assert isinstance(segment.signatures, Column) and segment.signatures.shape == (segment.count, CONFIG.num_perm)


def test_a_doc_id_given_twice_is_indexed_once_as_kept(index_dir: Path) -> None:
    text = article(77)
    batch = batch_of(["same", "same"], [text, text])
    decisions, written = run(index_dir, "run-1", batch)
    assert written == 1 and decisions.is_duplicate.tolist() == [False, True]
    known = LakeIndex.open(index_dir, CONFIG).decisions_of(["same"])
    assert known.is_duplicate.tolist() == [False] and known.dup_cluster == ["same"]


def test_a_query_against_many_copies_finds_each_querys_best_match_in_any_block_size(
        index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pages = [article(500 + p) for p in range(3)]
    for run_number in range(2):  # two segments, each with 20 near-copies of every page
        copies = [edit(page, 100 * run_number + c, 0.02 + 0.01 * (c % 4)) for page in pages for c in range(20)]
        run(index_dir, f"run-{run_number}", batch_of([f"r{run_number}-{i:02d}" for i in range(60)], copies))
    probe = batch_of([f"q{i}" for i in range(9)], [edit(page, 900 + i, 0.03) for i, page in enumerate(pages * 3)])
    index = LakeIndex.open(index_dir, CONFIG)
    whole, _ = index.query(probe.signatures, probe.sizes)
    monkeypatch.setattr(query, "_CANDIDATE_PAIRS_AT_ONCE", 1)  # one query row per chunk of pairs
    monkeypatch.setattr(query, "_QUERY_ROWS_AT_ONCE", 1)  # one query row's band keys at a time
    one_by_one, _ = index.query(probe.signatures, probe.sizes)
    assert np.array_equal(whole.query_rows, one_by_one.query_rows)
    assert whole.doc_ids == one_by_one.doc_ids and whole.dup_cluster == one_by_one.dup_cluster
    assert np.array_equal(whole.similarity, one_by_one.similarity)
    # Brute force over every lake entry: the most similar one, ties to the smallest cluster id.
    lake_ids = [f"r{r}-{i:02d}" for r in range(2) for i in range(60)]
    found, lake_sigs = index.signatures_of(lake_ids)
    clusters = index.decisions_of(lake_ids).dup_cluster
    assert found.all() and list(whole.query_rows) == list(range(9))
    for q in range(9):
        sims = estimated_jaccard(np.repeat(probe.signatures[q : q + 1], len(lake_sigs), axis=0), lake_sigs)
        top = float(sims.max())
        assert whole.similarity[q] == top
        assert whole.dup_cluster[q] == min(c for s, c in zip(sims.tolist(), clusters, strict=True) if s == top)


def test_an_open_partitioned_index_holds_no_file_descriptor(index_dir: Path) -> None:
    # Python's mmap keeps a descriptor per mapping: P x segments x 12 arrays would pass the usual limit of 1,024.
    for number in range(3):
        run(index_dir, f"run-{number}", batch_of([f"d{number}"], [article(800 + number)]))
    before = len(os.listdir("/proc/self/fd"))
    index = LakeIndex.open(index_dir, CONFIG)
    probe = batch_of(["q"], [edit(article(801), 3)])
    matches, _ = index.query(probe.signatures, probe.sizes)
    assert matches.doc_ids == ["d1"] and len(index.segments) > 16
    assert len(os.listdir("/proc/self/fd")) == before

"""The persistent lake index: incremental dedup across runs, publication, compatibility."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.dedup import (
    CorruptIndexError,
    DedupBatch,
    DedupConfig,
    DedupDecisions,
    IncompatibleIndexError,
    LakeIndex,
    compact,
    estimated_jaccard,
    publish_segment,
    resolve,
)
from flows.dedup import index as dedup_index
from flows.dedup.index import segment_destination
from tests.dedup_helpers import CONFIG, article, batch_of, edit


def run(index_dir: Path, name: str, batch: DedupBatch) -> tuple[DedupDecisions, int]:
    """One ingest run as the pipeline does it: open, resolve, write a segment, publish it."""
    index = LakeIndex.open(index_dir, CONFIG)
    decisions = resolve(batch, index, CONFIG)
    staging = index_dir.parent / "_staging" / name
    written = index.write_segment(staging, batch, decisions)
    if written:
        publish_segment(index_dir, staging)
    else:
        assert not staging.exists()  # nothing new: nothing to publish
    return decisions, written


def as_dict(batch: DedupBatch, d: DedupDecisions) -> dict[str, tuple[str, bool, float]]:
    return {
        doc: (d.dup_cluster[i], bool(d.is_duplicate[i]), round(float(d.dup_similarity[i]), 6))
        for i, doc in enumerate(batch.doc_ids)
    }


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "lake" / "_index"


FIRST = batch_of(
    ["a1", "a2", "b1", "c1"],
    [article(1), edit(article(1), 5), article(2), article(3)],
    [0.9, 0.5, 0.5, 0.5],
)


def test_missing_directory_is_an_empty_index(index_dir: Path) -> None:
    index = LakeIndex.open(index_dir, CONFIG)
    assert len(index) == 0
    assert not resolve(FIRST, index, CONFIG).is_duplicate[[0, 2, 3]].any()


def test_second_run_flags_near_copies_of_first_run_documents(index_dir: Path) -> None:
    first, written = run(index_dir, "run-1", FIRST)
    assert written == 4
    assert as_dict(FIRST, first)["a2"][:2] == ("a1", True)
    second = batch_of(
        ["x1", "x2", "x3", "x4"],
        # near-copy of a1, near-copy of the old duplicate a2, exact copy of b1, something new
        [edit(article(1), 9), edit(article(1), 5) + " update", article(2), article(4)],
        [1.0, 1.0, 1.0, 0.1],
    )
    got = as_dict(second, run(index_dir, "run-2", second)[0])
    # The lake's documents stay kept even though the new ones score higher.
    assert got["x1"][:2] == ("a1", True) and 0.8 < got["x1"][2] < 1.0
    assert got["x2"][:2] == ("a1", True)  # joins the old duplicate's cluster
    assert got["x3"] == ("b1", True, 1.0)
    assert got["x4"] == ("x4", False, 1.0)
    assert len(LakeIndex.open(index_dir, CONFIG)) == 8


def test_rerunning_a_batch_adds_nothing_and_changes_nothing(index_dir: Path) -> None:
    first, _ = run(index_dir, "run-1", FIRST)
    again, written = run(index_dir, "run-2", FIRST)
    assert written == 0
    assert as_dict(FIRST, again) == as_dict(FIRST, first)
    assert len(LakeIndex.open(index_dir, CONFIG)) == 4


def test_new_docs_in_a_later_run_never_displace_kept_lake_docs(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    better = batch_of(["z0"], [article(3) + " more words here"], [1.0])
    got = as_dict(better, run(index_dir, "run-2", better)[0])
    assert got["z0"][:2] == ("c1", True)
    # The first run's rows read back unchanged.
    index = LakeIndex.open(index_dir, CONFIG)
    known = index.decisions_of(["a1", "a2", "c1"])
    assert known.found.all()
    assert known.dup_cluster == ["a1", "a1", "c1"]
    assert known.is_duplicate.tolist() == [False, True, False]


def test_incompatible_index_is_refused_with_a_way_out(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    with pytest.raises(IncompatibleIndexError, match=r"num_perm.*move that directory aside"):
        LakeIndex.open(index_dir, DedupConfig(num_perm=64, bands=16, rows=4))
    # A threshold change does not touch the index: allowed.
    assert len(LakeIndex.open(index_dir, DedupConfig(threshold=0.9))) == 4


def test_only_published_complete_segments_are_read(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    segments = index_dir / "segments"
    (segments / "_tmp-run-2").mkdir()
    (segments / ".hidden").mkdir()
    assert len(LakeIndex.open(index_dir, CONFIG)) == 4
    (segments / "broken").mkdir()
    with pytest.raises(CorruptIndexError, match=r"no meta\.json"):
        LakeIndex.open(index_dir, CONFIG)


def test_segment_destination_and_publish(index_dir: Path, tmp_path: Path) -> None:
    staging = tmp_path / "staging" / "run-7"
    assert segment_destination(index_dir, staging) == index_dir / "segments" / "run-7"
    LakeIndex.open(index_dir, CONFIG).write_segment(
        staging, FIRST, resolve(FIRST, LakeIndex.open(index_dir, CONFIG), CONFIG)
    )
    assert publish_segment(index_dir, staging).is_dir()
    meta = json.loads((index_dir / "segments" / "run-7" / "meta.json").read_text())
    assert meta["count"] == 4 and meta["index_params"]["num_perm"] == CONFIG.num_perm


def test_compaction_keeps_every_answer(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    second = batch_of(["y1", "y2"], [article(5), edit(article(2), 3)])
    run(index_dir, "run-2", second)
    probe = batch_of(["p1", "p2", "p3"], [edit(article(5), 4), edit(article(1), 4), article(6)])
    before = as_dict(probe, resolve(probe, LakeIndex.open(index_dir, CONFIG), CONFIG))
    assert compact(index_dir, CONFIG, "compact-1") is not None
    assert [p.name for p in (index_dir / "segments").iterdir()] == ["compact-1"]
    index = LakeIndex.open(index_dir, CONFIG)
    assert len(index) == 6
    assert as_dict(probe, resolve(probe, index, CONFIG)) == before
    assert before["p1"][:2] == ("y1", True) and before["p2"][:2] == ("a1", True)


def test_query_fetches_only_candidates(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    index = LakeIndex.open(index_dir, CONFIG)
    probe = batch_of(["q"], [article(2)])
    matches, containing = index.query(probe.signatures, probe.sizes)
    assert containing.doc_ids == []  # an exact copy is not "contained": the container must be larger
    assert matches.doc_ids == ["b1"] and matches.dup_cluster == ["b1"]
    assert np.array_equal(matches.similarity, [1.0])
    # Segments are read-only views of memory-mapped files, not loaded copies.
    sigs = index.segments[0].signatures
    assert not sigs.flags.owndata and not sigs.flags.writeable


def test_every_near_copy_in_a_later_run_points_at_its_first_run_document(index_dir: Path) -> None:
    originals = [article(1000 + i, 200 + 7 * i) for i in range(30)]
    first = batch_of([f"o{i}" for i in range(30)], originals)
    run(index_dir, "run-1", first)
    copies = [edit(t, i, 0.01 + 0.01 * (i % 3)) + (" update line" if i % 2 else "") for i, t in enumerate(originals)]
    second = batch_of([f"c{i}" for i in range(30)], copies, [1.0] * 30)
    got = as_dict(second, run(index_dir, "run-2", second)[0])
    assert all(got[f"c{i}"][:2] == (f"o{i}", True) for i in range(30))
    assert min(v[2] for v in got.values()) >= CONFIG.threshold


def test_a_doc_id_given_twice_is_indexed_once_as_kept(index_dir: Path) -> None:
    text = article(77)
    batch = batch_of(["same", "same"], [text, text])
    decisions, written = run(index_dir, "run-1", batch)
    assert written == 1 and decisions.is_duplicate.tolist() == [False, True]
    known = LakeIndex.open(index_dir, CONFIG).decisions_of(["same"])
    assert known.is_duplicate.tolist() == [False] and known.dup_cluster == ["same"]


def test_compaction_is_size_tiered_and_never_resurrects_replaced_segments(index_dir: Path) -> None:
    for r in range(3):
        run(
            index_dir,
            f"run-{r}",
            batch_of([f"r{r}-{i}" for i in range(r + 2)], [article(500 + 10 * r + i) for i in range(r + 2)]),
        )
    # Only the two smallest (2 + 3 entries) fit in 5.
    assert compact(index_dir, CONFIG, "c-1", max_entries=5) is not None
    names = sorted(p.name for p in (index_dir / "segments").iterdir())
    assert names == ["c-1", "run-2"]
    (index_dir / "segments" / "run-0").mkdir()  # a leftover that deletion missed
    assert compact(index_dir, CONFIG, "c-2") is not None
    index = LakeIndex.open(index_dir, CONFIG)
    assert len(index) == 9 and [s.name for s in index.segments] == ["c-2"]


def test_a_damaged_segment_is_reported_not_misread(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    sigs = index_dir / "segments" / "run-1" / "signatures.npy"
    sigs.write_bytes(sigs.read_bytes()[:200])  # truncated copy
    with pytest.raises(CorruptIndexError, match=r"run-1.*re-ingest"):
        LakeIndex.open(index_dir, CONFIG)


@pytest.fixture(scope="module")
def lake_of_first_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("lake") / "_index"
    run(index_dir, "run-1", FIRST)
    return index_dir


_SECOND = [
    ("n1", edit(article(1), 11), 0.9),  # near-copy of the lake's a1
    ("n2", edit(article(1), 12), 0.2),  # another one
    ("n3", article(9), 0.5),  # new, with a near-copy of its own in the batch
    ("n4", edit(article(9), 13), 0.7),
    ("n5", article(3), 0.1),  # exact copy of the lake's c1
]


@settings(max_examples=20, deadline=None)
@given(order=st.permutations(range(len(_SECOND))))
def test_decisions_against_the_lake_ignore_row_order(lake_of_first_run: Path, order: list[int]) -> None:
    rows = [_SECOND[i] for i in order]
    batch = batch_of([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    got = as_dict(batch, resolve(batch, LakeIndex.open(lake_of_first_run, CONFIG), CONFIG))
    assert {k: v[:2] for k, v in got.items()} == {
        "n1": ("a1", True),
        "n2": ("a1", True),
        "n3": ("n4", True),  # n4 scores higher: it is kept
        "n4": ("n4", False),
        "n5": ("c1", True),
    }


def test_the_flow_compacts_the_index_when_segments_pile_up(tmp_path: Path) -> None:
    from prefect.logging import disable_run_logger

    from flows.dedup import index as dedup_index
    from flows.ingest import _compact_index
    from flows.storage import Store

    index_dir = tmp_path / "_index"
    for number in range(34):
        batch = batch_of([f"doc-{number}"], [article(number)])
        index = LakeIndex.open(index_dir, CONFIG)
        staged = tmp_path / "staging" / f"seg{number:03d}"
        index.write_segment(staged, batch, resolve(batch, index, CONFIG))
        dedup_index.publish_segment(index_dir, staged)
    assert dedup_index.segment_count(index_dir) == 34
    with disable_run_logger():
        _compact_index(Store(str(tmp_path)), index_dir, CONFIG, "run-x")
    assert dedup_index.segment_count(index_dir) == 1
    assert len(LakeIndex.open(index_dir, CONFIG)) == 34


def test_a_query_against_many_copies_finds_each_querys_best_match_in_any_block_size(
        index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pages = [article(500 + p) for p in range(3)]
    for run_number in range(2):  # two segments, each with 20 near-copies of every page
        copies = [edit(page, 100 * run_number + c, 0.02 + 0.01 * (c % 4)) for page in pages for c in range(20)]
        run(index_dir, f"run-{run_number}", batch_of([f"r{run_number}-{i:02d}" for i in range(60)], copies))
    probe = batch_of([f"q{i}" for i in range(9)], [edit(page, 900 + i, 0.03) for i, page in enumerate(pages * 3)])
    index = LakeIndex.open(index_dir, CONFIG)
    whole, _ = index.query(probe.signatures, probe.sizes)
    monkeypatch.setattr(dedup_index, "_CANDIDATE_PAIRS_AT_ONCE", 1)  # one query row per block
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


def _words(text: str, start: float, stop: float) -> str:
    words = text.split()
    return " ".join(words[int(len(words) * start) : int(len(words) * stop)])


_ARTICLES = [article(700 + a, 400) for a in range(5)]


def test_excerpts_in_a_later_run_point_at_their_lake_article_and_a_rerun_adds_nothing(index_dir: Path) -> None:
    run(index_dir, "run-1", batch_of([f"o{a}" for a in range(5)], _ARTICLES))
    excerpts = [_words(t, 0, 0.35 + 0.05 * a) for a, t in enumerate(_ARTICLES)]
    negatives = [
        _words(_ARTICLES[0], 0, 0.1),  # 40 words: too short to call contained
        article(900, 600) + " " + _words(_ARTICLES[0], 0.5, 0.6) + " " + _words(_ARTICLES[0], 0.8, 0.9),  # quotes
        _words(_ARTICLES[1], 0.5, 1) + " " + _words(_ARTICLES[2], 0.5, 1),  # a mash-up of two halves
    ]
    later = batch_of([f"e{a}" for a in range(5)] + ["short", "quote", "mashup"], excerpts + negatives, [1.0] * 8)
    decisions, written = run(index_dir, "run-2", later)
    got = as_dict(later, decisions)
    for a in range(5):
        assert got[f"e{a}"][:2] == (f"o{a}", True)
        assert decisions.dup_kind[a] == "contained" and decisions.dup_containment[a] >= 0.8
    assert all(got[n] == (n, False, 1.0) for n in ("short", "quote", "mashup"))
    assert decisions.dup_kind[5:] == [None, None, None] and written == 8
    again, written = run(index_dir, "run-3", later)
    assert written == 0 and as_dict(later, again) == got
    assert again.dup_kind == decisions.dup_kind
    assert np.allclose(again.dup_containment, decisions.dup_containment, atol=1e-6)


def test_a_later_superset_of_a_lake_document_is_kept_and_the_lake_row_stays(index_dir: Path) -> None:
    excerpt = batch_of(["excerpt"], [_words(_ARTICLES[0], 0, 0.4)])
    run(index_dir, "run-1", excerpt)
    whole = batch_of(["whole"], [_ARTICLES[0]])
    decisions, _ = run(index_dir, "run-2", whole)
    # Rows already in the lake never change, so the longer document is kept as a new one.
    assert as_dict(whole, decisions) == {"whole": ("whole", False, 1.0)} and decisions.dup_kind == [None]
    known = LakeIndex.open(index_dir, CONFIG).decisions_of(["excerpt"])
    assert known.dup_cluster == ["excerpt"] and known.is_duplicate.tolist() == [False]


def test_exact_and_near_copies_of_lake_documents_say_so(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    later = batch_of(["same", "close"], [article(2), edit(article(3), 8)])
    decisions, _ = run(index_dir, "run-2", later)
    assert decisions.dup_cluster == ["b1", "c1"] and decisions.dup_kind == ["exact", "near"]


def test_an_index_of_an_unknown_format_is_refused_with_a_way_out(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    meta_path = index_dir / "segments" / "run-1" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format": 3}))  # written by a later siftlake
    with pytest.raises(IncompatibleIndexError, match=r"format 3.*reads formats 1, 2.*move that directory aside"):
        LakeIndex.open(index_dir, CONFIG)


# A lake index written by siftlake before containment dedup (format 1, banding 32 x 4, the defaults
# then), with the answers that code gave: see tests/data/index_format1/make_fixture.py.
_FORMAT_1 = Path(__file__).parent / "data" / "index_format1"
_FORMAT_1_EXPECTED = json.loads((_FORMAT_1 / "expected.json").read_text())
_FORMAT_1_PROBE = {
    "p-near-a1": edit(article(1), 9),
    "p-near-a2": edit(article(1), 5) + " update",
    "p-same-b1": article(2),
    "p-near-d2": edit(article(4, 500), 7),
    "p-excerpt-c1": " ".join(article(3).split()[:150]),
    "p-new": article(9),
}


@pytest.fixture
def format_1_index(tmp_path: Path) -> Path:
    index_dir = tmp_path / "lake" / "_index"
    shutil.copytree(_FORMAT_1 / "_index", index_dir)
    return index_dir


def _segment_metas(index_dir: Path) -> dict[str, dict[str, object]]:
    return {p.name: json.loads((p / "meta.json").read_text()) for p in sorted((index_dir / "segments").iterdir())}


def test_a_lake_indexed_before_containment_dedup_gives_the_answers_it_gave_then(format_1_index: Path) -> None:
    metas = _segment_metas(format_1_index)
    assert {m["format"] for m in metas.values()} == {1}
    assert {(m["index_params"]["bands"], m["index_params"]["rows"]) for m in metas.values()} == {(32, 4)}  # type: ignore[index]
    assert (CONFIG.bands, CONFIG.rows) != (32, 4)  # the upgrade changed the default banding too
    probe = batch_of(list(_FORMAT_1_PROBE), list(_FORMAT_1_PROBE.values()))
    decisions, written = run(format_1_index, "run-3", probe)
    got = as_dict(probe, decisions)
    assert got == {doc: (c, dup, round(sim, 6)) for doc, (c, dup, sim) in _FORMAT_1_EXPECTED["probe"].items()}
    # Without content hashes an identical copy of an old entry is "near" at similarity 1.0; without set
    # sizes nothing is contained in one (the excerpt of c1 is kept, as before).
    kinds = dict(zip(probe.doc_ids, decisions.dup_kind, strict=True))
    assert kinds == {"p-near-a1": "near", "p-near-a2": "near", "p-same-b1": "near", "p-near-d2": "near",
                     "p-excerpt-c1": None, "p-new": None}
    # The old entries read back as they were written, their kind and containment unknown.
    known = LakeIndex.open(format_1_index, CONFIG).decisions_of(list(_FORMAT_1_EXPECTED["entries"]))
    assert known.found.all()
    assert [[c, bool(d), float(s)] for c, d, s in zip(known.dup_cluster, known.is_duplicate, known.dup_similarity,
                                                      strict=True)] == list(_FORMAT_1_EXPECTED["entries"].values())
    assert known.dup_kind == [None] * 7 and np.isnan(known.dup_containment).all()
    # The new run's segment is format 2 with today's banding, and both kinds of segment answer later runs.
    assert written == 6 and _segment_metas(format_1_index)["run-3"]["format"] == 2
    later = batch_of(["l-old", "l-new"], [edit(article(2), 21), " ".join(article(9).split()[:120])])
    again, _ = run(format_1_index, "run-4", later)
    assert again.dup_cluster == ["b1", "p-new"] and again.dup_kind == ["near", "contained"]


def test_compacting_old_and_new_segments_keeps_every_answer(format_1_index: Path) -> None:
    words = article(9, 400).split()
    run(format_1_index, "run-3", batch_of(["new"], [" ".join(words)]))
    probe = batch_of(
        ["near-old", "excerpt-old", "excerpt-new", "near-new"],
        [edit(article(1), 31), " ".join(article(4, 500).split()[:200]), " ".join(words[:160]),
         edit(" ".join(words), 32)],
    )
    before = resolve(probe, LakeIndex.open(format_1_index, CONFIG), CONFIG)
    entries = [*_FORMAT_1_EXPECTED["entries"], "new"]
    known_before = LakeIndex.open(format_1_index, CONFIG).decisions_of(entries)
    merged = compact(format_1_index, CONFIG, "compact-1")
    assert merged is not None and list(_segment_metas(format_1_index)) == ["compact-1"]
    meta = _segment_metas(format_1_index)["compact-1"]
    assert meta["format"] == 2 and meta["index_params"] == CONFIG.index_params()  # re-banded to 64 x 2
    index = LakeIndex.open(format_1_index, CONFIG)
    after = resolve(probe, index, CONFIG)
    assert as_dict(probe, after) == as_dict(probe, before)
    assert after.dup_kind == before.dup_kind == ["near", None, "contained", "near"]
    # An old entry's unknown set size never makes it a container, before or after compaction.
    assert as_dict(probe, after)["excerpt-old"] == ("excerpt-old", False, 1.0)
    known = index.decisions_of(entries)
    assert known.dup_cluster == known_before.dup_cluster and known.dup_kind == known_before.dup_kind
    assert np.array_equal(known.dup_containment, known_before.dup_containment, equal_nan=True)
    assert np.isnan(known.dup_containment[:7]).all() and known.dup_containment[7] == 1.0

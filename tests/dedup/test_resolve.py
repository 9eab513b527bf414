"""The keep policy: near, exact and contained duplicates within a run and against the lake's index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.dedup import (
    DedupBatch,
    LakeIndex,
    band_keys,
    candidate_pairs,
    content_hash,
    estimated_jaccard,
    fingerprints,
    resolve,
)
from tests.dedup.helpers import (
    CONFIG,
    FIRST,
    UNIVERSE,
    UNIVERSE_SIGS,
    UNIVERSE_SIZES,
    article,
    as_dict,
    batch_of,
    edit,
    run,
)


def decide(batch: DedupBatch, tmp_path: Path) -> dict[str, tuple[str, bool, float]]:
    d = resolve(batch, LakeIndex.open(tmp_path / "_index", CONFIG), CONFIG)
    return {
        doc: (d.dup_cluster[i], bool(d.is_duplicate[i]), float(d.dup_similarity[i]))
        for i, doc in enumerate(batch.doc_ids)
    }


def test_near_and_exact_duplicates_found_unrelated_docs_kept(tmp_path: Path) -> None:
    base = article(7)
    texts = [base, edit(base, 1), base, article(8), article(9)]
    out = decide(batch_of(["a", "b", "c", "d", "e"], texts, [0.9, 0.5, 0.9, 0.5, 0.5]), tmp_path)
    assert out["a"] == ("a", False, 1.0)
    assert out["b"][:2] == ("a", True) and 0.8 < out["b"][2] < 1.0
    assert out["c"] == ("a", True, 1.0)
    assert out["d"] == ("d", False, 1.0)
    assert out["e"] == ("e", False, 1.0)


def test_keep_policy_quality_then_length_then_doc_id(tmp_path: Path) -> None:
    base = article(3)
    longer = base + " appended update line"
    by_quality = decide(batch_of(["z", "y"], [base, longer], [0.9, 0.1]), tmp_path)
    assert by_quality["y"][:2] == ("z", True)
    by_length = decide(batch_of(["z", "y"], [base, longer], [0.5, 0.5]), tmp_path)
    assert by_length["z"][:2] == ("y", True)
    by_id = decide(batch_of(["z", "y"], [base, base], [0.5, 0.5]), tmp_path)
    assert by_id == {"y": ("y", False, 1.0), "z": ("y", True, 1.0)}


def test_chained_near_duplicates_form_one_cluster(tmp_path: Path) -> None:
    base = article(11)
    one = edit(base, 1, 0.04)
    two = edit(one, 2, 0.04)
    out = decide(batch_of(["a", "b", "c"], [base, one, two], [0.9, 0.5, 0.1]), tmp_path)
    assert {v[0] for v in out.values()} == {"a"}


def _expected_universe() -> dict[str, tuple[str, bool, str | None]]:
    """The keep policy spelled out: the best family member is kept, excerpts point to it."""
    expected: dict[str, tuple[str, bool, str | None]] = {}
    for f in range(3):
        members = [(q, len(t), doc) for doc, t, q in UNIVERSE if doc.startswith(f"d{f}")]
        kept = sorted(members, key=lambda m: (-m[0], -m[1], m[2]))[0][2]
        for _, _, doc in members:
            expected[doc] = (kept, doc != kept, "near" if doc != kept else None)
        expected[f"x{f}"] = (kept, True, "contained")
        if f == 0:
            expected["xx0"] = (kept, True, "contained")
    for doc in ("s0", "s1", "s2", "s3", "m01"):
        expected[doc] = (doc, False, None)
    return expected


@settings(max_examples=25, deadline=None)
@given(
    order=st.permutations(range(len(UNIVERSE))),
    shard=st.integers(min_value=1, max_value=len(UNIVERSE)),
)
def test_decisions_ignore_row_order_and_shard_size(order: list[int], shard: int) -> None:
    texts = [UNIVERSE[i][1] for i in order]
    # Signatures are computed per shard, as the pipeline's workers do.
    parts = [fingerprints(texts[i : i + shard], CONFIG) for i in range(0, len(texts), shard)]
    sigs, sizes = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    batch = DedupBatch(
        doc_ids=[UNIVERSE[i][0] for i in order],
        content_hashes=[content_hash(t) for t in texts],
        signatures=sigs,
        quality=np.array([UNIVERSE[i][2] for i in order]),
        lengths=np.array([len(t) for t in texts]),
        sizes=sizes,
    )
    assert np.array_equal(sigs, UNIVERSE_SIGS[order]) and np.array_equal(sizes, UNIVERSE_SIZES[order])
    d = resolve(batch, LakeIndex(Path("/nonexistent"), CONFIG, []), CONFIG)
    got = {doc: (d.dup_cluster[i], bool(d.is_duplicate[i]), d.dup_kind[i]) for i, doc in enumerate(batch.doc_ids)}
    assert got == _expected_universe()


def _components_by_brute_force(sigs: np.ndarray) -> list[set[int]]:
    """Connected components of every LSH candidate pair (no cap) whose estimated Jaccard passes the threshold."""
    left, right = candidate_pairs(band_keys(sigs, CONFIG), len(sigs))
    parent = list(range(len(sigs)))

    def find(u: int) -> int:
        while parent[u] != u:
            u = parent[u]
        return u

    for u, v in zip(left.tolist(), right.tolist(), strict=True):
        if estimated_jaccard(sigs[u : u + 1], sigs[v : v + 1])[0] >= CONFIG.threshold:
            parent[find(u)] = find(v)
    groups: dict[int, set[int]] = {}
    for u in range(len(sigs)):
        groups.setdefault(find(u), set()).add(u)
    return sorted(groups.values(), key=min)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0.0, 0.02, 0.1, 0.2, 0.3, 0.45]), min_size=1, max_size=6),
                min_size=1, max_size=5))
def test_clusters_are_the_components_of_all_verified_candidate_pairs(families: list[list[float]]) -> None:
    # Each family: an article and a chain of edits of it, some light (linked) and some heavy (not).
    texts = []
    for f, shares in enumerate(families):
        text = article(300 + f)
        for step, share in enumerate(shares):
            text = edit(text, 1000 * f + step, share) if share else text
            texts.append(text)
    batch = batch_of([f"d{i:03d}" for i in range(len(texts))], texts)
    # Containment off: the "edited" placeholder words make heavily edited copies partly contained.
    near_only = CONFIG.model_copy(update={"containment_min_shingles": 10**9})
    decisions = resolve(batch, LakeIndex(Path("/nonexistent"), near_only, []), near_only)
    clusters: dict[str, set[int]] = {}
    for row, kept in enumerate(decisions.dup_cluster):
        clusters.setdefault(kept, set()).add(row)
    assert sorted(clusters.values(), key=min) == _components_by_brute_force(batch.signatures)


def test_within_a_run_the_containing_document_is_kept_whatever_the_scores(tmp_path: Path) -> None:
    whole = article(40, 400)
    excerpt = " ".join(whole.split()[:150])
    out = decide(batch_of(["excerpt", "whole"], [excerpt, whole], [1.0, 0.1]), tmp_path)
    assert out["whole"] == ("whole", False, 1.0)
    assert out["excerpt"][:2] == ("whole", True) and out["excerpt"][2] < CONFIG.threshold


@settings(max_examples=30, deadline=None)
@given(start=st.integers(min_value=0, max_value=250), length=st.integers(min_value=3, max_value=49))
def test_short_texts_are_never_flagged_as_contained(start: int, length: int) -> None:
    whole = article(41, 300)
    excerpt = " ".join(whole.split()[start : start + length])
    batch = batch_of(["excerpt", "whole"], [excerpt, whole])
    d = resolve(batch, LakeIndex(Path("/nonexistent"), CONFIG, []), CONFIG)
    assert not d.is_duplicate.any() and d.dup_kind == [None, None]


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


def test_every_near_copy_in_a_later_run_points_at_its_first_run_document(index_dir: Path) -> None:
    originals = [article(1000 + i, 200 + 7 * i) for i in range(30)]
    first = batch_of([f"o{i}" for i in range(30)], originals)
    run(index_dir, "run-1", first)
    copies = [edit(t, i, 0.01 + 0.01 * (i % 3)) + (" update line" if i % 2 else "") for i, t in enumerate(originals)]
    second = batch_of([f"c{i}" for i in range(30)], copies, [1.0] * 30)
    got = as_dict(second, run(index_dir, "run-2", second)[0])
    assert all(got[f"c{i}"][:2] == (f"o{i}", True) for i in range(30))
    assert min(v[2] for v in got.values()) >= CONFIG.threshold


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

"""Signatures, config and the in-run keep policy of flows.dedup."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import xxhash
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from flows.dedup import (
    DedupBatch,
    DedupConfig,
    LakeIndex,
    band_keys,
    candidate_pairs,
    content_hash,
    estimated_jaccard,
    fingerprints,
    resolve,
    shingle_ids,
    shingles,
    signatures,
    tokens,
)
from tests.dedup_helpers import CONFIG, article, batch_of, edit


def decide(batch: DedupBatch, tmp_path: Path) -> dict[str, tuple[str, bool, float]]:
    d = resolve(batch, LakeIndex.open(tmp_path / "_index", CONFIG), CONFIG)
    return {
        doc: (d.dup_cluster[i], bool(d.is_duplicate[i]), float(d.dup_similarity[i]))
        for i, doc in enumerate(batch.doc_ids)
    }


@pytest.mark.parametrize(
    ("hash_function", "hashfunc"),
    [("token_xxh32", int), ("xxh32", xxhash.xxh32_intdigest), ("sha1_hash32", None)],
)
def test_signatures_equal_datasketch_minhash(hash_function: str, hashfunc: object) -> None:
    config = DedupConfig.model_validate({"hash_function": hash_function})
    # The long one crosses the chunk boundary of the (permutations x shingles) product.
    texts = [article(1), "Short text.", "", "Ünïcödé — 東京 text, with punctuation!", article(2, 20_000)]
    sigs = signatures(texts, config)
    for text, sig in zip(texts, sigs, strict=True):
        kwargs = {} if hashfunc is None else {"hashfunc": hashfunc}
        expected = MinHash(num_perm=config.num_perm, seed=config.seed, **kwargs)
        if hash_function == "token_xxh32":
            values: list[object] = [int(v) for v in shingle_ids(text, config)]
        else:
            values = [s.encode() for s in shingles(text, config)]
        if values:
            expected.update_batch(values)
        assert np.array_equal(expected.hashvalues, sig)


def test_signatures_do_not_depend_on_the_shard() -> None:
    texts = [article(i, 50 + i) for i in range(12)]
    whole = signatures(texts, CONFIG)
    parts = np.concatenate([signatures(texts[i : i + 5], CONFIG) for i in range(0, 12, 5)])
    assert whole.dtype == np.uint32 and whole.shape == (12, CONFIG.num_perm)
    assert np.array_equal(whole, parts)


def test_cosmetic_changes_do_not_change_tokens() -> None:
    assert tokens("Hello,  WORLD!\n\nIt's fine.") == tokens("hello world - it s fine")
    assert tokens("東京") == ["東", "京"]


def test_content_hash_is_the_exact_duplicate_key() -> None:
    assert content_hash("a b") == content_hash("a b")
    assert content_hash("a b") != content_hash("a  b")
    assert len(content_hash("")) == 32


def test_config_is_frozen_strict_and_checked() -> None:
    with pytest.raises(ValidationError):
        DedupConfig(bands=40, rows=4)  # 160 > 128 permutations
    with pytest.raises(ValidationError):
        DedupConfig(shingle_kind="char")  # token hashing needs word shingles
    with pytest.raises(ValidationError):
        DedupConfig(unknown=1)  # type: ignore[call-arg,unused-ignore]
    with pytest.raises(ValidationError):
        CONFIG.threshold = 0.1  # type: ignore[misc,unused-ignore]
    assert DedupConfig.model_validate(CONFIG.model_dump()) == CONFIG
    assert "threshold" not in CONFIG.index_params()


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


# A small universe of documents: three families of near-copies, excerpts of them (the first 35-60%
# of an article, or of an excerpt), a mash-up of two families' second halves, and singletons.
_FAMILY = [article(100 + f) for f in range(3)]
_UNIVERSE = [
    (f"d{f}{v}", edit(_FAMILY[f], v, 0.01 * v) if v else _FAMILY[f], (v * 37 % 10) / 10)
    for f in range(3)
    for v in range(4)
] + [(f"s{i}", article(200 + i), 0.5) for i in range(4)] + [
    (f"x{f}", " ".join(_FAMILY[f].split()[: 105 + 20 * f]), 1.0) for f in range(3)
] + [
    ("xx0", " ".join(_FAMILY[0].split()[:70]), 1.0),  # an excerpt of the excerpt x0
    ("m01", " ".join(_FAMILY[0].split()[150:] + _FAMILY[1].split()[150:]), 0.5),
]
_UNIVERSE_SIGS, _UNIVERSE_SIZES = fingerprints([t for _, t, _ in _UNIVERSE], CONFIG)


def _expected_universe() -> dict[str, tuple[str, bool, str | None]]:
    """The keep policy spelled out: the best family member is kept, excerpts point to it."""
    expected: dict[str, tuple[str, bool, str | None]] = {}
    for f in range(3):
        members = [(q, len(t), doc) for doc, t, q in _UNIVERSE if doc.startswith(f"d{f}")]
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
    order=st.permutations(range(len(_UNIVERSE))),
    shard=st.integers(min_value=1, max_value=len(_UNIVERSE)),
)
def test_decisions_ignore_row_order_and_shard_size(order: list[int], shard: int) -> None:
    texts = [_UNIVERSE[i][1] for i in order]
    # Signatures are computed per shard, as the pipeline's workers do.
    parts = [fingerprints(texts[i : i + shard], CONFIG) for i in range(0, len(texts), shard)]
    sigs, sizes = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    batch = DedupBatch(
        doc_ids=[_UNIVERSE[i][0] for i in order],
        content_hashes=[content_hash(t) for t in texts],
        signatures=sigs,
        quality=np.array([_UNIVERSE[i][2] for i in order]),
        lengths=np.array([len(t) for t in texts]),
        sizes=sizes,
    )
    assert np.array_equal(sigs, _UNIVERSE_SIGS[order]) and np.array_equal(sizes, _UNIVERSE_SIZES[order])
    d = resolve(batch, LakeIndex(Path("/nonexistent"), CONFIG, []), CONFIG)
    got = {doc: (d.dup_cluster[i], bool(d.is_duplicate[i]), d.dup_kind[i]) for i, doc in enumerate(batch.doc_ids)}
    assert got == _expected_universe()


def test_fingerprints_are_the_same_from_any_number_of_worker_processes() -> None:
    texts = [t for _, t, _ in _UNIVERSE]
    for workers in (1, 3):
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(partial(fingerprints, config=CONFIG), [texts[i : i + 5] for i in range(0, 21, 5)]))
        assert np.array_equal(np.concatenate([p[0] for p in parts]), _UNIVERSE_SIGS)
        assert np.array_equal(np.concatenate([p[1] for p in parts]), _UNIVERSE_SIZES)


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

"""Tokens, shingles, MinHash signatures (bit-identical to datasketch) and the exact-duplicate key."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np
import pytest
import xxhash
from datasketch import MinHash

from flows.dedup import DedupConfig, content_hash, fingerprints, shingle_ids, shingles, signatures, tokens
from tests.dedup.helpers import CONFIG, UNIVERSE, UNIVERSE_SIGS, UNIVERSE_SIZES, article


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


def test_fingerprints_are_the_same_from_any_number_of_worker_processes() -> None:
    texts = [t for _, t, _ in UNIVERSE]
    for workers in (1, 3):
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(partial(fingerprints, config=CONFIG), [texts[i : i + 5] for i in range(0, 21, 5)]))
        assert np.array_equal(np.concatenate([p[0] for p in parts]), UNIVERSE_SIGS)
        assert np.array_equal(np.concatenate([p[1] for p in parts]), UNIVERSE_SIZES)

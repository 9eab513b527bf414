"""What duplicate detection knows of a text: tokens, shingles, MinHash signatures, LSH band keys, the
exact-duplicate key, and the estimators that compare signatures (Jaccard, containment, Wilson bound).

Signatures are datasketch 2.x ``MinHash`` values: scheme ``affine32`` (MurmurHash3 finalizer, then
``a * h + b`` mod 2^32), permutations ``(a, b)`` drawn from ``numpy.random.RandomState(seed)``
exactly as datasketch draws them. They are computed here with numpy (permutations x shingles,
then a min along the contiguous axis), ~3x the throughput of ``MinHash.bulk``. The shingle hash
is ``config.hash_function``; with it, datasketch's ``MinHash(num_perm, seed, hashfunc=...)`` gives
bit-identical ``hashvalues`` (tests hold this for all three choices):

* ``token_xxh32`` (default): ``hashfunc=int`` over :func:`shingle_ids` (each token hashed once with
  xxh32, k consecutive token hashes mixed); ~2,800 docs/s per core on 810-word articles.
* ``xxh32``: ``hashfunc=xxhash.xxh32_intdigest`` over the UTF-8 bytes of :func:`shingles`.
* ``sha1_hash32``: datasketch's default hashfunc over the same bytes (~1,300 docs/s).

A pair is a near-duplicate when the share of equal signature values (the estimated Jaccard
similarity of the two shingle sets) is >= ``threshold``; candidates come from LSH banding
(``bands`` x ``rows``), so only pairs sharing a band are ever compared.

A document A is contained in a larger document B when most of A's shingles are in B
(:func:`contained_in`): the estimate is ``hits / samples`` (:func:`containment_samples`), and its
one-sided Wilson lower bound must reach ``containment_threshold``. The candidates are the same LSH
candidates: the idea of datasketch's ``MinHashLSHEnsemble`` (a containment query is a Jaccard
query at the lower threshold ``t|A| / (|B| + |A| - t|A|)``) with one fixed banding low enough for
the size ratios caught (64 bands x 2 rows), not one banding per size partition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from hashlib import sha1
from operator import methodcaller

import numpy as np
import xxhash

from flows.dedup.config import DedupConfig

# CJK and other scripts written without spaces: each character is a token, so word shingles
# still work there (a ``\w+`` run would otherwise be a whole sentence).
_NO_SPACE_SCRIPTS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u0e00-\u0e7f"
TOKEN_RE = re.compile(rf"[{_NO_SPACE_SCRIPTS}]|[^\W{_NO_SPACE_SCRIPTS}]+")
_NO_SPACE_RE = re.compile(rf"[{_NO_SPACE_SCRIPTS}]")
_WORD_RE = re.compile(r"\w+")
_MAX_HASH = np.uint32(0xFFFFFFFF)
# Shingles per (permutations x shingles) product: bounds the temporary to num_perm x 64 KB.
_CHUNK_SHINGLES = 1 << 14
_GOLDEN64 = np.uint64(0x9E3779B97F4A7C15)
_DIGEST = methodcaller("digest")

def content_hash(text: str) -> str:
    """Hex xxh3-128 of the (already normalized) text: the exact-duplicate key."""
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8"))


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens: punctuation, case and spacing changes do not change them."""
    folded = text.casefold()
    # The plain pattern is ~30% faster; the search for a no-space script costs ~2%.
    if _NO_SPACE_RE.search(folded):
        return TOKEN_RE.findall(folded)
    return _WORD_RE.findall(folded)


def shingles(text: str, config: DedupConfig) -> list[str]:
    """The shingle strings of ``text`` (with repeats); a short text is a single shingle."""
    toks = tokens(text)
    k = config.shingle_size
    if config.shingle_kind == "char":
        joined = " ".join(toks)
        if len(joined) <= k:
            return [joined] if joined else []
        return [joined[i : i + k] for i in range(len(joined) - k + 1)]
    if len(toks) <= k:
        return [" ".join(toks)] if toks else []
    return [" ".join(toks[i : i + k]) for i in range(len(toks) - k + 1)]


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Same draws, in the same order, as datasketch.MinHash._init_permutations for affine32.
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _fmix32(h: np.ndarray) -> np.ndarray:
    # MurmurHash3 finalizer, as datasketch applies before the affine permutation.
    return _finalize(h, np.uint32, (16, 13, 16), (0x85EBCA6B, 0xC2B2AE35))


def _fmix64(h: np.ndarray) -> np.ndarray:
    # MurmurHash3's 64-bit finalizer: mixes token hashes into shingle values and rows into band keys.
    return _finalize(h, np.uint64, (33, 33, 33), (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53))


def _finalize(h: np.ndarray, word: type[np.unsignedinteger], shifts: tuple[int, int, int],
              multipliers: tuple[int, int]) -> np.ndarray:
    """MurmurHash3's finalizer on ``word``-sized values: xor-shift, multiply, xor-shift, multiply, xor-shift."""
    for shift, multiplier in zip(shifts, multipliers, strict=False):
        h = h ^ (h >> word(shift))
        h = h * word(multiplier)
    out: np.ndarray = h ^ (h >> word(shifts[-1]))
    return out


def shingle_ids(text: str, config: DedupConfig) -> np.ndarray:
    """The distinct 32-bit shingle values of ``text`` (what the MinHash permutes), sorted.

    ``signatures`` equals datasketch's ``MinHash(num_perm, seed, hashfunc=int)`` updated with
    these values (scheme affine32). For 'xxh32'/'sha1_hash32' they are that hashfunc applied to
    the UTF-8 bytes of :func:`shingles`, i.e. ``MinHash(hashfunc=...)`` over the shingle bytes.
    """
    if config.hash_function == "token_xxh32":
        return _token_shingle_ids(tokens(text), config.shingle_size)
    unique = set(shingles(text, config))
    if config.hash_function == "xxh32":
        values = np.fromiter(map(xxhash.xxh32_intdigest, map(str.encode, unique)), dtype=np.uint32, count=len(unique))
    else:
        # datasketch.hashfunc.sha1_hash32: the first 4 digest bytes, little-endian.
        digests = b"".join(map(_DIGEST, map(sha1, map(str.encode, unique))))
        values = np.frombuffer(digests, dtype="<u4")[::5].astype(np.uint32)
    return np.unique(values)


def _token_shingle_ids(toks: list[str], k: int) -> np.ndarray:
    # Hash each token once (C-level map), then mix k consecutive token hashes with vector ops:
    # ~2x faster than joining and hashing shingle strings, the dominant cost otherwise.
    if not toks:
        return np.empty(0, dtype=np.uint32)
    th = np.fromiter(map(xxhash.xxh32_intdigest, map(str.encode, toks)), dtype=np.uint64, count=len(toks))
    m = max(len(toks) - k + 1, 1)
    mixed = np.full(m, _GOLDEN64, dtype=np.uint64)
    for j in range(min(k, len(toks))):
        mixed = _fmix64((mixed ^ th[j : j + m]) * _GOLDEN64)
    return np.unique((mixed >> np.uint64(32)).astype(np.uint32))


def signatures(texts: Sequence[str], config: DedupConfig) -> np.ndarray:
    """MinHash signatures, shape ``(len(texts), num_perm)``, uint32; a pure per-text function.

    An empty text (no tokens) gets the all-``0xFFFFFFFF`` signature of datasketch's empty MinHash.
    """
    return fingerprints(texts, config)[0]


def fingerprints(texts: Sequence[str], config: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(signatures, sizes)``: the MinHash signatures and each text's number of distinct shingles
    (uint32), which containment estimates need."""
    a, b = _permutations(config.num_perm, config.seed)
    a_col, b_col = a[:, None], b[:, None]
    out = np.full((len(texts), config.num_perm), _MAX_HASH, dtype=np.uint32)
    sizes = np.zeros(len(texts), dtype=np.uint32)
    for row, text in enumerate(texts):
        hashes = _fmix32(shingle_ids(text, config))
        sizes[row] = len(hashes)
        # (perms x shingles), in place, then a min along the contiguous axis: ~30x faster than
        # reduceat along axis 0; chunks bound the temporary for huge documents.
        for start in range(0, len(hashes), _CHUNK_SHINGLES):
            products = a_col * hashes[None, start : start + _CHUNK_SHINGLES]
            products += b_col
            if start == 0:
                products.min(axis=1, out=out[row])
            else:
                np.minimum(out[row], products.min(axis=1), out=out[row])
    return out, sizes


def band_keys(sigs: np.ndarray, config: DedupConfig) -> np.ndarray:
    """One 64-bit key per (band, document), shape ``(bands, n)``: equal bands give equal keys."""
    keys = np.empty((config.bands, sigs.shape[0]), dtype=np.uint64)
    for band in range(config.bands):
        keys[band] = band_key(sigs, config, band)
    return keys


def band_key(sigs: np.ndarray, config: DedupConfig, band: int) -> np.ndarray:
    """The 64-bit keys of one band, shape ``(n,)``."""
    cols = sigs[:, band * config.rows : (band + 1) * config.rows].astype(np.uint64)
    key = np.full(sigs.shape[0], ((band + 1) * int(_GOLDEN64)) % 2**64, dtype=np.uint64)
    for j in range(config.rows):
        key = _fmix64((key ^ cols[:, j]) * _GOLDEN64)
    return key


def estimated_jaccard(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row-wise share of equal signature values (datasketch's ``MinHash.jaccard``)."""
    return np.asarray((left == right).mean(axis=-1), dtype=np.float64)


def containment_samples(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``(hits, samples)`` for the containment of the left sets in the right ones.

    Under each permutation the minimum of the union lies in both sets (equal values), only in the
    left one (left value smaller) or only in the right one. ``samples`` counts the permutations
    whose union minimum lies in the left set, ``hits`` those where it lies in both: ``hits`` is
    binomial with ``samples`` trials and probability ``|L & R| / |L|``.
    """
    hits = (left == right).sum(axis=-1)
    return hits, hits + (left < right).sum(axis=-1)


def estimated_containment(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row-wise estimated share of the left set's shingles that are in the right set.

    ``hits / samples`` (see ``containment_samples``). At the sizes of an excerpt and its article it
    has a third to half the error of ``J (|L| + |R|) / ((1 + J) |L|)`` from the estimated Jaccard
    ``J`` and the set sizes (``bench/dedup.py`` measures both); 1.0 when there is no sample.
    """
    hits, samples = containment_samples(left, right)
    return np.where(samples > 0, hits / np.maximum(samples, 1), 1.0)


def wilson_lower_bound(hits: np.ndarray, samples: np.ndarray, z: float) -> np.ndarray:
    """One-sided Wilson lower confidence bound of a binomial proportion (0 where ``samples`` is 0)."""
    n = np.maximum(np.asarray(samples, dtype=np.float64), 1.0)
    p = np.asarray(hits, dtype=np.float64) / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return np.where(np.asarray(samples) > 0, (centre - spread) / (1 + z2 / n), 0.0)


def contained_in(left: np.ndarray, right: np.ndarray, left_sizes: np.ndarray, right_sizes: np.ndarray,
                 config: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``(is_contained, estimate)``: is the left document contained in the right one?

    Only in a strictly larger set (so containment links never form a cycle), only for left sets of
    at least ``containment_min_shingles``, and only when the Wilson lower bound of the estimate
    reaches ``containment_threshold``.
    """
    hits, samples = containment_samples(left, right)
    estimate = np.where(samples > 0, hits / np.maximum(samples, 1), 1.0)
    left_sizes = np.asarray(left_sizes, dtype=np.int64)
    ok = (
        (wilson_lower_bound(hits, samples, config.containment_z) >= config.containment_threshold)
        & (left_sizes >= config.containment_min_shingles)
        & (np.asarray(right_sizes, dtype=np.int64) > left_sizes)
    )
    return ok, estimate


def hash_words(content_hashes: Sequence[str]) -> np.ndarray:
    """The 128-bit hex ``content_hash`` values as ``(n, 2)`` uint64 (how the index stores them)."""
    raw = b"".join(bytes.fromhex(h.rjust(32, "0")[:32]) for h in content_hashes)
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(len(content_hashes), 2)

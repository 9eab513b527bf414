"""Exact, near and contained duplicates: shingles, MinHash signatures, LSH banding, clusters.

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

Keep policy (see :func:`resolve`):

* Within a run, near-duplicates form clusters (connected components of "estimated Jaccard >=
  threshold" edges); the kept document is the one with the highest quality score, then the
  longest text, then the smallest ``doc_id``. This is a total order on the documents' own values,
  so the outcome does not depend on row order, shard size or worker count.
* A cluster whose largest member is contained in a larger member of another cluster joins that
  cluster's destination (its members are ``contained`` duplicates): of a document and one that
  contains it, the containing one is kept, whatever their scores. Links only go from smaller to
  larger clusters, so they end; an excerpt contained in several clusters joins the best-estimated
  one, and those clusters stay apart (an excerpt in two mash-ups does not merge them).
* Across runs, a document already in the lake stays kept and never changes: a new document that
  matches a lake document (kept or duplicate) joins that lake document's ``dup_cluster``, and a new
  document contained in a lake document joins its ``dup_cluster`` too. A new document that
  contains a lake document is kept as a new document: the lake's row is not rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from hashlib import sha1
from operator import methodcaller
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xxhash
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from flows.dedup.index import LakeIndex

# CJK and other scripts written without spaces: each character is a token, so word shingles
# still work there (a ``\w+`` run would otherwise be a whole sentence).
_NO_SPACE_SCRIPTS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u0e00-\u0e7f"
_TOKEN_RE = re.compile(rf"[{_NO_SPACE_SCRIPTS}]|[^\W{_NO_SPACE_SCRIPTS}]+")
_NO_SPACE_RE = re.compile(rf"[{_NO_SPACE_SCRIPTS}]")
_WORD_RE = re.compile(r"\w+")
_MAX_HASH = np.uint32(0xFFFFFFFF)
# Shingles per (permutations x shingles) product: bounds the temporary to num_perm x 64 KB.
_CHUNK_SHINGLES = 1 << 14
_GOLDEN64 = np.uint64(0x9E3779B97F4A7C15)
_DIGEST = methodcaller("digest")


class DedupConfig(BaseModel):
    """Parameters of duplicate detection; recorded in each run's manifest.

    The shingle, permutation, seed and hash fields shape the persistent index's signatures, so
    changing one of them needs a new index (``LakeIndex.open`` refuses a mismatch). ``bands`` and
    ``rows`` may change: each index segment is queried with the banding it was built with, and
    compaction re-bands merged segments to the current one.

    Defaults chosen with ``python bench/dedup.py --sweep`` (exact Jaccard on 698 extracted pages
    of the built near-duplicate set, and the clough pairs): word 3-grams at 0.6 gave pairwise
    precision 1.000 / recall 0.994; word 1-2-grams and char 5-grams raise the similarity of
    unrelated pages (max negative 0.64 / 0.54 / 0.61 vs 0.52 for word 3-grams); 4-5-grams lose
    recall on edited copies. Negatives reach 0.52 (two-article mash-ups) and true copies fall to
    0.29 (short articles in a heavy template), so 0.6 sits above the mash-ups with a margin for
    the MinHash error (std ~0.04 at 128 permutations). 64 bands x 2 rows serve both near and
    contained duplicates: a pair is a candidate with probability 0.984 at Jaccard 0.25 (a teaser of
    a quarter of its article) and ~1 at 0.6 (32 x 4 gave 0.988 there). Containment defaults
    (``bench/dedup.py``): threshold 0.6 with z 3.0 gave precision 1.0 and recall 0.994 on the
    containment set and kept the built set's F1 at 0.998; z 2.33 let a 600-shingle mash-up into a
    3,500-shingle article (21 samples, estimate 0.83, true 0.57).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    shingle_kind: Literal["word", "char"] = Field(
        default="word",
        description="'word': n-grams of lower-cased Unicode word tokens (CJK/Thai: one token per "
        "character); 'char': n-grams of characters of the lower-cased, space-joined tokens.",
    )
    shingle_size: int = Field(default=3, ge=1, le=64, description="n of the n-gram shingles.")
    num_perm: int = Field(default=128, ge=8, le=1024, description="MinHash permutations per signature.")
    bands: int = Field(default=64, ge=1, description="LSH bands; a pair is a candidate if any band agrees.")
    rows: int = Field(default=2, ge=1, description="Signature values per LSH band.")
    threshold: float = Field(
        default=0.6,
        gt=0.0,
        le=1.0,
        description="Minimum estimated Jaccard similarity (of shingle sets) for a near-duplicate.",
    )
    containment_threshold: float = Field(
        default=0.6,
        gt=0.0,
        le=1.0,
        description="A document is contained in a larger one when the lower confidence bound (see "
        "containment_z) of the estimated share of its shingles found in the larger one is at least this.",
    )
    containment_z: float = Field(
        default=3.0,
        ge=0.0,
        description="z of the one-sided Wilson lower bound on the estimated containment (3.0: 99.9%): "
        "a small excerpt of a large document gives few MinHash samples, so it needs a clearer estimate.",
    )
    containment_min_shingles: int = Field(
        default=48,
        ge=1,
        description="Documents with fewer distinct shingles (word 3-grams: about 50 words) are never "
        "flagged as contained: chrome-sized fragments are contained everywhere.",
    )
    seed: int = Field(default=1, ge=0, lt=2**32, description="datasketch MinHash seed (permutations).")
    scheme: Literal["affine32"] = Field(
        default="affine32", description="datasketch 2.x permutation scheme the signatures follow."
    )
    hash_function: Literal["token_xxh32", "xxh32", "sha1_hash32"] = Field(
        default="token_xxh32",
        description="How a shingle becomes the 32-bit value datasketch's MinHash permutes. "
        "'token_xxh32' (word shingles only, fastest): xxh32 of each token's UTF-8 bytes, the "
        "shingle's tokens mixed in order (see shingle_ids). 'xxh32': xxhash.xxh32_intdigest of "
        "the shingle string's UTF-8 bytes. 'sha1_hash32': datasketch's default hashfunc on them.",
    )
    max_candidates_per_band: int = Field(
        default=256,
        ge=1,
        description="Lake documents fetched per (document, band) bucket: bounds the work a "
        "huge bucket (e.g. thousands of copies of one page) can cause; the first ones by "
        "index order are taken, so the outcome stays deterministic.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> DedupConfig:
        if self.hash_function == "token_xxh32" and self.shingle_kind != "word":
            raise ValueError("hash_function 'token_xxh32' needs shingle_kind 'word'")
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self

    def index_params(self) -> dict[str, Any]:
        """The parameters a persistent index depends on (its compatibility key)."""
        fields = ("shingle_kind", "shingle_size", "num_perm", "bands", "rows", "seed", "scheme", "hash_function")
        params = {name: getattr(self, name) for name in fields}
        params["tokenizer"] = "unicode_words_lower_v1"
        return params


def content_hash(text: str) -> str:
    """Hex xxh3-128 of the (already normalized) text: the exact-duplicate key."""
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8"))


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens: punctuation, case and spacing changes do not change them."""
    folded = text.casefold()
    # The plain pattern is ~30% faster; the search for a no-space script costs ~2%.
    if _NO_SPACE_RE.search(folded):
        return _TOKEN_RE.findall(folded)
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
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    out: np.ndarray = h ^ (h >> np.uint32(16))
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


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    out: np.ndarray = h ^ (h >> np.uint64(33))
    return out


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


def resolve(batch: DedupBatch, index: LakeIndex, config: DedupConfig) -> DedupDecisions:
    """Exact, near and contained duplicates inside ``batch`` and against the lake ``index``.

    Rows whose ``doc_id`` is already in the lake get the lake's decision back unchanged (a re-run
    changes nothing). Everything else depends only on the set of rows, never on their order.
    """
    n = len(batch)
    decisions = DedupDecisions(
        dup_cluster=list(batch.doc_ids),
        is_duplicate=np.zeros(n, dtype=bool),
        dup_similarity=np.ones(n, dtype=np.float64),
        dup_kind=[None] * n,
        dup_containment=np.ones(n, dtype=np.float64),
    )
    known = index.decisions_of(batch.doc_ids)
    for row in np.flatnonzero(known.found).tolist():
        decisions.dup_cluster[row] = known.dup_cluster[row]
        decisions.is_duplicate[row] = known.is_duplicate[row]
        decisions.dup_similarity[row] = known.dup_similarity[row]
        decisions.dup_kind[row] = known.dup_kind[row]
        decisions.dup_containment[row] = known.dup_containment[row]
    todo = np.flatnonzero(~known.found)
    if len(todo):
        _resolve_new(batch, todo, index, config, decisions)
    return decisions


@dataclass
class _Target:
    """Where a near-duplicate component ends up: a lake cluster, or a component of this run."""

    lake_cluster: str | None
    component: int
    contained: bool
    """Reached through a containment link (its rows are ``contained`` duplicates)."""


def _resolve_new(
    batch: DedupBatch,
    todo: np.ndarray,
    index: LakeIndex,
    config: DedupConfig,
    out: DedupDecisions,
) -> None:
    sigs = np.ascontiguousarray(batch.signatures[todo], dtype=np.uint32)
    sizes = np.asarray(batch.sizes, dtype=np.uint32)[todo]
    # Identical (signature, size) rows are handled once: np.unique sorts, so the order is row-order free.
    keyed, inverse = np.unique(np.column_stack([sigs, sizes]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    uniq, usizes = np.ascontiguousarray(keyed[:, :-1]), keyed[:, -1]
    parent = np.arange(len(uniq))
    for u, v in _content_hash_links([batch.content_hashes[r] for r in todo], inverse):
        _union(parent, u, v)
    keys = band_keys(uniq, config)
    _link_near_duplicates(uniq, keys, config, parent)
    roots = _roots(parent, np.arange(len(uniq)))
    near, inside = index.query(uniq, usizes)
    lake_near, lake_in = _best_lake_matches(near, len(uniq)), _best_lake_matches(inside, len(uniq))
    # As in the run, only a component's largest member being contained takes it into a container.
    lake_in = [m if big else None for m, big in zip(lake_in, _largest_members(roots, usizes).tolist(), strict=True)]
    targets = _component_targets(
        roots, usizes, _component_best(lake_near, roots), _component_best(lake_in, roots),
        _batch_containers(uniq, usizes, keys, roots, config),
    )
    row_comp = roots[inverse]
    row_target = [targets[int(c)] for c in row_comp.tolist()]
    in_lake = np.array([t.lake_cluster is not None for t in row_target], dtype=bool)
    chosen = []
    for k in np.flatnonzero(in_lake).tolist():
        # A row joins its own best lake match's cluster, else its component's (linked through other rows).
        own = lake_near[int(inverse[k])] if not row_target[k].contained else lake_in[int(inverse[k])]
        chosen.append(own[1] if own is not None and row_target[k].component == row_comp[k] else
                      str(row_target[k].lake_cluster))
    _assign_lake(batch, todo[in_lake], chosen, [t.contained for t, lake in zip(row_target, in_lake, strict=True)
                                                if lake], index, out)
    rest = np.flatnonzero(~in_lake)
    _assign_batch(batch, todo[rest], row_comp[rest], np.array([row_target[k].component for k in rest.tolist()],
                  dtype=np.int64), np.array([row_target[k].contained for k in rest.tolist()], dtype=bool), out)


def _content_hash_links(hashes: list[str], inverse: np.ndarray) -> list[tuple[int, int]]:
    # Equal content always gives equal signatures; this only guards callers whose hash and
    # signature disagree, so that exact duplicates are never missed.
    first: dict[str, int] = {}
    links = []
    for h, u in zip(hashes, inverse.tolist(), strict=True):
        other = first.setdefault(h, u)
        if other != u:
            links.append((other, u))
    return links


def _find(parent: np.ndarray, u: int) -> int:
    while parent[u] != u:
        parent[u] = parent[parent[u]]
        u = int(parent[u])
    return u


def _union(parent: np.ndarray, u: int, v: int) -> None:
    ru, rv = _find(parent, u), _find(parent, v)
    if ru != rv:
        # The smaller id becomes the root: the result is independent of the edge order.
        parent[max(ru, rv)] = min(ru, rv)


def bucket_pairs(keys: np.ndarray, cap: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Rows sharing a band key, one band and one distance in the sorted bucket at a time.

    Inside one bucket each row is paired with at most ``cap`` following members (in sorted
    order), which bounds the quadratic blow-up of a huge bucket. A pair may come from several bands.
    """
    n = keys.shape[1]
    for band in range(keys.shape[0]):
        order = np.argsort(keys[band], kind="stable")
        sorted_keys = keys[band][order]
        for distance in range(1, min(cap, n - 1) + 1):
            same = np.flatnonzero(sorted_keys[:-distance] == sorted_keys[distance:])
            if len(same) == 0:
                break
            yield order[same], order[same + distance]


def candidate_pairs(keys: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, ``i < j``, that share a band key in any band (each pair once; see ``bucket_pairs``)."""
    n = keys.shape[1]
    codes = []
    for i, j in bucket_pairs(keys, cap):
        lo, hi = np.minimum(i, j).astype(np.uint64), np.maximum(i, j).astype(np.uint64)
        codes.append(lo * np.uint64(n) + hi)
    if not codes:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    unique = np.unique(np.concatenate(codes))
    return (unique // np.uint64(n)).astype(np.int64), (unique % np.uint64(n)).astype(np.int64)


def _link_near_duplicates(uniq: np.ndarray, keys: np.ndarray, config: DedupConfig, parent: np.ndarray) -> None:
    """Union the distinct signatures ``uniq`` that are LSH candidates with estimated Jaccard >= threshold.

    Candidates come one band and one bucket distance at a time (``bucket_pairs``), and a pair whose
    ends are already linked is skipped unverified: the components are those of all verified candidate
    pairs (``candidate_pairs``), but memory stays at one band's pairs rather than every band's (a run
    of many near-copies of each page once needed ~6 KB per document here).
    """
    for left, right in bucket_pairs(keys, config.max_candidates_per_band):
        apart = _roots(parent, left) != _roots(parent, right)
        _union_verified(uniq, left[apart], right[apart], config.threshold, parent)


def _roots(parent: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """The union-find roots of ``nodes`` (vectorized ``_find``, without path compression)."""
    roots: np.ndarray = parent[nodes]
    while True:
        up: np.ndarray = parent[roots]
        if np.array_equal(up, roots):
            return roots
        roots = up


def _union_verified(uniq: np.ndarray, left: np.ndarray, right: np.ndarray, threshold: float,
                    parent: np.ndarray) -> None:
    step = 1 << 15
    for start in range(0, len(left), step):
        lo, hi = left[start : start + step], right[start : start + step]
        similar = estimated_jaccard(uniq[lo], uniq[hi]) >= threshold
        for u, v in zip(lo[similar].tolist(), hi[similar].tolist(), strict=True):
            _union(parent, u, v)


def _component_order(roots: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per row, the rank of its component by (largest set in it, root): containment links go up this order."""
    largest = np.zeros(len(roots), dtype=np.int64)
    np.maximum.at(largest, roots, np.asarray(sizes, dtype=np.int64))
    comps = np.unique(roots)
    rank = np.zeros(len(roots), dtype=np.int64)
    rank[comps[np.lexsort((comps, largest[comps]))]] = np.arange(len(comps))
    return rank


def _batch_containers(uniq: np.ndarray, sizes: np.ndarray, keys: np.ndarray, roots: np.ndarray,
                      config: DedupConfig) -> dict[int, int]:
    """For each component with a member contained in a larger member of another component, that
    container's component: the best-estimated link, then the larger container, then the smaller root.

    Links only go from a lower to a higher component rank (``_component_order``), so following them
    ends. A component is never joined by two containers: a story contained in two mash-ups does not
    make the mash-ups duplicates of each other.
    """
    rank = _component_order(roots, sizes)
    largest = _largest_members(roots, sizes)
    best: dict[int, tuple[float, int, int]] = {}
    step = 1 << 15
    for left, right in bucket_pairs(keys, config.max_candidates_per_band):
        apart = roots[left] != roots[right]
        left, right = left[apart], right[apart]
        swap = (sizes[left] > sizes[right]) | ((sizes[left] == sizes[right]) & (left > right))
        small, large = np.where(swap, right, left), np.where(swap, left, right)
        # A component goes into a container only when its largest member is contained: a feed that
        # is a near-duplicate of its article does not take the article into a story quoting the feed.
        keep = largest[small]
        small, large = small[keep], large[keep]
        for start in range(0, len(small), step):
            s, g = small[start : start + step], large[start : start + step]
            ok, estimate = contained_in(uniq[s], uniq[g], sizes[s], sizes[g], config)
            src, dst = roots[s[ok]], roots[g[ok]]
            up = rank[src] < rank[dst]
            for a, b, e in zip(src[up].tolist(), dst[up].tolist(), estimate[ok][up].tolist(), strict=True):
                offer = (e, int(rank[b]), b)
                if a not in best or offer > best[a]:
                    best[a] = offer
    return {a: b for a, (_, _, b) in best.items()}


def _largest_members(roots: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per row: is it its component's largest member (largest set, then smallest row)?"""
    order = np.lexsort((np.arange(len(roots)), -np.asarray(sizes, dtype=np.int64), roots))
    first = np.r_[True, roots[order][1:] != roots[order][:-1]]
    out = np.zeros(len(roots), dtype=bool)
    out[order[first]] = True
    return out


def _component_targets(
    roots: np.ndarray,
    sizes: np.ndarray,
    lake_near: dict[int, tuple[float, str]],
    lake_in: dict[int, tuple[float, str]],
    containers: dict[int, int],
) -> dict[int, _Target]:
    """Each component's destination: a lake near match first (lake documents stay kept), then a lake
    document containing it, then the destination of a larger component of this run containing it."""
    rank = _component_order(roots, sizes)
    targets: dict[int, _Target] = {}
    comps = np.unique(roots)
    for comp in comps[np.argsort(-rank[comps], kind="stable")].tolist():  # containers before the contained
        if comp in lake_near:
            targets[comp] = _Target(lake_near[comp][1], comp, False)
        elif comp in lake_in:
            targets[comp] = _Target(lake_in[comp][1], comp, True)
        elif comp in containers:
            up = targets[containers[comp]]
            targets[comp] = _Target(up.lake_cluster, up.component, True)
        else:
            targets[comp] = _Target(None, comp, False)
    return targets


@dataclass
class LakeMatches:
    """The best verified lake match of each query row that has one (see ``LakeIndex.query``)."""

    query_rows: np.ndarray
    doc_ids: list[str]
    dup_cluster: list[str]
    similarity: np.ndarray
    """Estimated Jaccard for near matches; estimated containment of the query for containing ones."""


@dataclass
class KnownDecisions:
    """Decisions already in the lake for some doc_ids (``found`` marks which)."""

    found: np.ndarray
    dup_cluster: list[str]
    is_duplicate: np.ndarray
    dup_similarity: np.ndarray
    dup_kind: list[str | None]
    dup_containment: np.ndarray


@dataclass
class KeptDocuments:
    """What the index holds about some lake documents (``found`` marks which)."""

    found: np.ndarray
    signatures: np.ndarray
    sizes: np.ndarray
    hashes: np.ndarray
    """``hash_words`` of their content_hash."""


def _best_lake_matches(matches: LakeMatches, n: int) -> list[tuple[float, str] | None]:
    # Per query: the lake cluster of its best lake match (ties: smallest cluster id).
    best: list[tuple[float, str] | None] = [None] * n
    for q, cluster, sim in zip(
        matches.query_rows.tolist(), matches.dup_cluster, matches.similarity.tolist(), strict=True
    ):
        cur = best[q]
        if cur is None or sim > cur[0] or (sim == cur[0] and cluster < cur[1]):
            best[q] = (sim, cluster)
    return best


def _component_best(best: list[tuple[float, str] | None], roots: np.ndarray) -> dict[int, tuple[float, str]]:
    comp: dict[int, tuple[float, str]] = {}
    for u, match in enumerate(best):
        if match is None:
            continue
        root = int(roots[u])
        cur = comp.get(root)
        if cur is None or match[0] > cur[0] or (match[0] == cur[0] and match[1] < cur[1]):
            comp[root] = match
    return comp


def _describe(out: DedupDecisions, row: int, kept: str, similarity: float, containment: float,
              exact: bool, contained: bool) -> None:
    out.dup_cluster[row] = kept
    out.is_duplicate[row] = True
    out.dup_similarity[row] = similarity
    out.dup_containment[row] = containment
    out.dup_kind[row] = "exact" if exact else "contained" if contained else "near"


def _assign_lake(batch: DedupBatch, rows: np.ndarray, chosen: list[str], contained: list[bool],
                 index: LakeIndex, out: DedupDecisions) -> None:
    # The lake's documents stay kept: each row becomes a duplicate of the lake cluster chosen for it.
    if len(rows) == 0:
        return
    kept = index.kept_documents(chosen)
    mine = np.asarray(batch.signatures[rows], dtype=np.uint32)
    sims = estimated_jaccard(mine, kept.signatures)
    inside = estimated_containment(mine, kept.signatures)
    exact = (hash_words([batch.content_hashes[r] for r in rows.tolist()]) == kept.hashes).all(axis=1)
    for pos, row in enumerate(rows.tolist()):
        if not kept.found[pos]:  # the kept document's own entry is missing (should not happen)
            sims[pos], inside[pos], exact[pos] = np.nan, np.nan, False
        _describe(out, row, chosen[pos], float(sims[pos]), float(inside[pos]), bool(exact[pos]), contained[pos])


def _assign_batch(batch: DedupBatch, rows: np.ndarray, comps: np.ndarray, targets: np.ndarray,
                  contained: np.ndarray, out: DedupDecisions) -> None:
    # Inside a destination component new to the lake: keep the best of its own members (never one
    # absorbed from a contained component) by quality, then length, then doc_id.
    if len(rows) == 0:
        return
    quality = np.nan_to_num(np.asarray(batch.quality, dtype=np.float64)[rows], nan=-np.inf)
    lengths = np.asarray(batch.lengths, dtype=np.int64)[rows]
    ids = [batch.doc_ids[r] for r in rows.tolist()]
    order = sorted(np.flatnonzero(comps == targets).tolist(), key=lambda k: (-quality[k], -lengths[k], ids[k]))
    kept_of: dict[int, int] = {}
    for k in order:
        kept_of.setdefault(int(comps[k]), k)
    kept = np.array([kept_of[int(t)] for t in targets.tolist()], dtype=np.int64)
    mine, theirs = batch.signatures[rows], batch.signatures[rows[kept]]
    sims, inside = estimated_jaccard(mine, theirs), estimated_containment(mine, theirs)
    for k, row in enumerate(rows.tolist()):
        if kept[k] != k:
            exact = batch.content_hashes[row] == batch.content_hashes[int(rows[kept[k]])]
            _describe(out, row, ids[kept[k]], float(sims[k]), float(inside[k]), exact, bool(contained[k]))

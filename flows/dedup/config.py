"""The parameters of duplicate detection (``DedupConfig``), recorded in each run's manifest."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DedupConfig(BaseModel):
    """Parameters of duplicate detection; recorded in each run's manifest.

    The shingle, permutation, seed and hash fields shape the persistent index's signatures, so
    changing one of them needs a new index (``LakeIndex.open`` refuses a mismatch). ``bands`` and
    ``rows`` may change: each index segment is queried with the banding it was built with (compaction
    merges segments of one banding; folding older-format segments into the partitions re-bands them).
    ``partitions`` is fixed when the lake's index is created (``LAKE/_index/index.json``).

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

    partitions: int = Field(
        default=16,
        ge=1,
        le=4096,
        description="Partitions of the LSH band keys: a run's duplicates are found by one task per partition, "
        "so no process holds the whole run's fingerprints; the lake's near-duplicate index is split the same "
        "way (band rows by band key, entries by doc-id key), each partition compacted by itself, so a query "
        "touches O(log L) segments per partition. Fixed when the index is created (recorded in "
        "LAKE/_index/index.json): a lake's later runs must use the same value.",
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

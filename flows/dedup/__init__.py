"""Duplicates: MinHash fingerprints, the resolver that decides exact, near and contained copies within a run and
against the lake, and the lake's index of every document already kept."""

from flows.dedup.index import CorruptIndexError, IncompatibleIndexError, LakeIndex, compact, publish_segment
from flows.dedup.resolve import (
    DUP_KINDS,
    DedupBatch,
    DedupConfig,
    DedupDecisions,
    band_keys,
    candidate_pairs,
    contained_in,
    content_hash,
    estimated_jaccard,
    fingerprints,
    resolve,
    shingle_ids,
    shingles,
    signatures,
    tokens,
)

__all__ = [
    "DUP_KINDS",
    "CorruptIndexError",
    "DedupBatch",
    "DedupConfig",
    "DedupDecisions",
    "IncompatibleIndexError",
    "LakeIndex",
    "band_keys",
    "candidate_pairs",
    "compact",
    "contained_in",
    "content_hash",
    "estimated_jaccard",
    "fingerprints",
    "publish_segment",
    "resolve",
    "shingle_ids",
    "shingles",
    "signatures",
    "tokens",
]

"""Duplicates: MinHash fingerprints, the resolver that decides exact, near and contained copies within a run and
against the lake, and the lake's index of every document already kept."""

from flows.dedup.config import DedupConfig
from flows.dedup.fingerprint import (
    band_keys,
    contained_in,
    content_hash,
    estimated_containment,
    estimated_jaccard,
    fingerprints,
    shingle_ids,
    shingles,
    signatures,
    tokens,
)
from flows.dedup.index import (
    CorruptIndexError,
    EntryChange,
    IncompatibleIndexError,
    IndexRewrite,
    LakeIndex,
    compact,
    index_config,
    migrate,
    publish_segment,
    rewrite_entries,
)
from flows.dedup.records import DUP_KINDS, DedupBatch, DedupDecisions
from flows.dedup.resolve import candidate_pairs, resolve

__all__ = [
    "DUP_KINDS",
    "CorruptIndexError",
    "DedupBatch",
    "DedupConfig",
    "DedupDecisions",
    "EntryChange",
    "IncompatibleIndexError",
    "IndexRewrite",
    "LakeIndex",
    "band_keys",
    "candidate_pairs",
    "compact",
    "contained_in",
    "content_hash",
    "estimated_containment",
    "estimated_jaccard",
    "fingerprints",
    "index_config",
    "migrate",
    "publish_segment",
    "resolve",
    "rewrite_entries",
    "shingle_ids",
    "shingles",
    "signatures",
    "tokens",
]

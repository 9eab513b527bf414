"""The lake's persistent near-duplicate index: immutable segments of sorted, memory-mapped arrays."""

from flows.dedup.index.compaction import compact, segment_count
from flows.dedup.index.lake_index import LakeIndex
from flows.dedup.index.rewrite import EntryChange, IndexRewrite, index_config, rewrite_entries
from flows.dedup.index.segment import FORMAT, READABLE_FORMATS, CorruptIndexError, IncompatibleIndexError
from flows.dedup.index.write import publish_segment, segment_destination

__all__ = [
    "FORMAT",
    "READABLE_FORMATS",
    "CorruptIndexError",
    "EntryChange",
    "IncompatibleIndexError",
    "IndexRewrite",
    "LakeIndex",
    "compact",
    "index_config",
    "publish_segment",
    "rewrite_entries",
    "segment_count",
    "segment_destination",
]

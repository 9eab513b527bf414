"""The lake's persistent near-duplicate index: immutable segments of sorted, memory-mapped arrays."""

from flows.dedup.index.compaction import compact, segment_count
from flows.dedup.index.lake_index import LakeIndex
from flows.dedup.index.segment import FORMAT, READABLE_FORMATS, CorruptIndexError, IncompatibleIndexError
from flows.dedup.index.write import publish_segment, segment_destination

__all__ = [
    "FORMAT",
    "READABLE_FORMATS",
    "CorruptIndexError",
    "IncompatibleIndexError",
    "LakeIndex",
    "compact",
    "publish_segment",
    "segment_count",
    "segment_destination",
]

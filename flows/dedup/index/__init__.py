"""The lake's persistent near-duplicate index: immutable segments of sorted, memory-mapped arrays, partitioned
by band key and doc-id key (format 3, ``layout``), compacted per partition in size tiers; segments of the older
formats are read as they are and folded into the partitions by compaction (``migrate``)."""

from flows.dedup.index.compaction import compact, segment_count, segments_per_partition
from flows.dedup.index.files import CorruptIndexError, IncompatibleIndexError
from flows.dedup.index.lake_index import LakeIndex
from flows.dedup.index.layout import FORMAT, INDEX_FILE, READABLE_FORMATS, partition_name
from flows.dedup.index.merge import EntryChange
from flows.dedup.index.migration import finish_migrations, migrate
from flows.dedup.index.rewrite import IndexRewrite, index_config, rewrite_entries
from flows.dedup.index.write import publish_segment, staged_moves

__all__ = [
    "FORMAT",
    "INDEX_FILE",
    "READABLE_FORMATS",
    "CorruptIndexError",
    "EntryChange",
    "IncompatibleIndexError",
    "IndexRewrite",
    "LakeIndex",
    "compact",
    "finish_migrations",
    "index_config",
    "migrate",
    "partition_name",
    "publish_segment",
    "rewrite_entries",
    "segment_count",
    "segments_per_partition",
    "staged_moves",
]

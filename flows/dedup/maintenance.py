"""``siftlake index migrate``: a lake's older-format index segments folded into the partitions at once, under
the lake's lock (compaction after each run otherwise folds them a few at a time)."""

from __future__ import annotations

import time
from typing import Any

from flows.dedup.cache import local_index, migrate_lake
from flows.dedup.config import DedupConfig
from flows.dedup.index import index_config, segment_count, segments_per_partition
from flows.dedup.index.layout import check_index, live_partitions, recorded_partitions
from flows.lake import lake_lock, recover
from flows.storage import Store


def migrate_index(lake_uri: str, partitions: int | None = None, lock_wait_s: float = 0.0,
                  cache_dir: str = "") -> dict[str, Any]:
    """Fold every older-format segment of the lake's index into the partitions (resuming an interrupted
    migration); return what was done. ``partitions`` applies to an index that does not record its own yet
    (default: ``DedupConfig``'s); one that does keeps it (asking for another is an ``IncompatibleIndexError``)."""
    lake = Store(lake_uri)
    lake.check_reachable()
    with lake_lock(lake, lock_wait_s):
        recover(lake)
        index_dir, _ = local_index(lake, cache_dir)
        config = index_config(index_dir)
        if config is None:
            return {"folded": [], "segments": 0, "note": "the lake has no near-duplicate index yet"}
        recorded = recorded_partitions(index_dir)
        wanted = partitions if partitions is not None else recorded if recorded is not None else config.partitions
        config = DedupConfig(**{**config.model_dump(), "partitions": wanted})
        check_index(index_dir, config)  # another number of partitions than recorded: refused, nothing written
        live_partitions(index_dir, config)
        start = time.perf_counter()
        folded = migrate_lake(lake, index_dir, config)
        return {"folded": folded, "partitions": config.partitions, "segments": segment_count(index_dir),
                "most_segments_in_a_partition": max(segments_per_partition(index_dir).values(), default=0),
                "seconds": round(time.perf_counter() - start, 3)}

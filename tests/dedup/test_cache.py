"""The index on this machine: what a task caches of a bucket lake's index, the cache's bound, when segments are
merged."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flows.dedup import DedupConfig, LakeIndex, resolve
from flows.dedup.cache import PartitionCache
from flows.storage import Store
from tests.dedup.helpers import CONFIG, article, batch_of, run
from tests.support.servers import S3Server


def test_after_a_run_the_partitions_where_segments_pile_up_are_compacted(tmp_path: Path) -> None:
    from flows.dedup import index as dedup_index
    from flows.dedup.cache import list_index
    from flows.dedup.maintenance import compact_after_run

    index_dir = tmp_path / "_index"
    for number in range(34):
        batch = batch_of([f"doc-{number}"], [article(number)])
        index = LakeIndex.open(index_dir, CONFIG)
        staged = tmp_path / "staging" / f"seg{number:03d}"
        index.write_segment(staged, f"seg{number:03d}", batch, resolve(batch, index, CONFIG))
        dedup_index.publish_segment(index_dir, staged, f"seg{number:03d}")
    assert max(dedup_index.segments_per_partition(index_dir).values()) == 34
    lake = Store(str(tmp_path))
    summary = compact_after_run(lake, list_index(lake, CONFIG), {}, CONFIG, "run-x", PartitionCache(lake))
    assert summary is not None and summary.startswith("merged segments into")
    assert max(dedup_index.segments_per_partition(index_dir).values()) <= 6
    assert len(LakeIndex.open(index_dir, CONFIG)) == 34


def bucket_lake(s3_server: S3Server, tmp_path: Path, runs: int, config: DedupConfig) -> Store:
    """A bucket lake whose index holds ``runs`` runs' segments (written locally, then uploaded)."""
    index_dir = tmp_path / "written" / "_index"
    for number in range(runs):
        texts = [article(10 * number + k) for k in range(6)]
        run(index_dir, f"run-{number}", batch_of([f"doc-{number}-{k}" for k in range(6)], texts), config)
    lake = f"{s3_server.bucket('cached')}/lake"
    s3_server.upload_tree(index_dir, f"{lake}/_index")
    return Store(lake, s3_server.storage_options())


def cached_partitions(cache: PartitionCache) -> list[str]:
    return sorted(p.name for p in (cache.root / "_index").glob("p*") if any(p.iterdir()))


def test_a_task_caches_only_the_partitions_it_opens_and_fetches_each_segment_once(s3_server: S3Server,
                                                                                   tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"partitions": 4})
    lake = bucket_lake(s3_server, tmp_path, 2, config)
    cache = PartitionCache(lake, str(tmp_path / "machine"))
    with cache.opened([1], config) as index:
        assert {s.partition for s in index.partition_segments(1)} == {1} and len(index.segments) == 2
    assert cached_partitions(cache) == ["p0001"] and cache.downloaded > 0
    fetched = cache.downloaded
    with cache.opened([1], config):
        assert cache.downloaded == fetched, "a cached segment is not downloaded again"
    on_disk = LakeIndex.open_partitions(tmp_path / "written" / "_index", config, [1])
    with cache.opened([1], config) as index:
        assert index.decisions_of(["doc-0-0", "doc-1-3"]).found.tolist() == \
            on_disk.decisions_of(["doc-0-0", "doc-1-3"]).found.tolist()


def test_two_processes_opening_a_partition_at_once_download_it_once(s3_server: S3Server, tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"partitions": 4})
    lake = bucket_lake(s3_server, tmp_path, 2, config)
    caches = [PartitionCache(lake, str(tmp_path / "machine")) for _ in range(4)]

    def open_partition(cache: PartitionCache) -> int:
        with cache.opened([2], config) as index:
            return len(index.segments)

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(open_partition, caches)) == [2] * 4
    one_copy = sum(f.stat().st_size for f in (caches[0].root / "_index" / "p0002").rglob("*") if f.is_file())
    assert sum(c.downloaded for c in caches) == one_copy


def test_the_cache_stays_under_its_bound_evicting_the_least_recently_used_partition_no_task_holds(
        s3_server: S3Server, tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"partitions": 4})
    lake = bucket_lake(s3_server, tmp_path, 2, config)
    unbounded = PartitionCache(lake, str(tmp_path / "sizes"))
    with unbounded.opened(range(4), config):
        sizes = {p: sum(f.stat().st_size for f in (unbounded.root / "_index" / p).rglob("*") if f.is_file())
                 for p in cached_partitions(unbounded)}
    assert len(sizes) == 4
    bound = max(sizes.values()) + min(sizes.values())  # room for two partitions, not three
    cache = PartitionCache(lake, str(tmp_path / "machine"), bound)
    with cache.opened([0], config), cache.opened([1], config), cache.opened([2], config):
        assert cached_partitions(cache) == ["p0000", "p0001", "p0002"], "partitions in use are never evicted"
    with cache.opened([3], config):
        held = cached_partitions(cache)
        assert "p0003" in held and "p0000" not in held, "the least recently used went first"
        assert sum(sizes[p] for p in held) <= bound

"""A run's dedup stages as its tasks call them (``flows.dedup.stages``, ``flows.dedup.matching``): which of the
lake's index each opens, and what each returns to the flow. No Prefect (``flows.ingest`` wraps them).

A task opens only its own partitions of the index (``flows.dedup.cache.PartitionCache``; a bucket lake's in its
machine's cache): a link or match task its partition, a kept task the partition homing the kept documents it reads,
a shard task only the home partitions of rows the known-units store holds (``KnownRows``). A lake with segments the
partition tasks cannot search (``IndexListing.searched_whole``) is opened whole, once per run and process
(``run_index``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash

from flows import lake as lakefs
from flows.config import StorageConfig
from flows.dedup import DedupConfig, LakeIndex, matching, stages
from flows.dedup.cache import PartitionCache, local_index, staged_index
from flows.dedup.index.files import doc_id_keys
from flows.dedup.index.layout import partition_folders, partition_name, partition_of, write_index_file
from flows.dedup.join import decide_run
from flows.dedup.records import KnownDecisions, LakeMatches
from flows.dedup.run_index import save_for_index, unindexed_rows, write_partition
from flows.lake.commit import fetch_staged
from flows.lake.layout import INDEX, SEGMENT_META
from flows.shard import load_known_units


def prepare_dedup(paths: lakefs.RunPaths, number: int, config: DedupConfig, storage: StorageConfig,
                  whole: bool = False) -> int:
    """Dedup's first stage for one staged shard: the lake's decisions of rows it holds already, band keys by
    partition. ``whole``: the lake must be searched whole (``IndexListing.searched_whole``). Returns the shard's
    count of documents."""
    lake = run_index(paths, config, storage) if whole else KnownRows(paths, config, storage)
    return stages.prepare_shard(paths, number, config, lake)


@dataclass(frozen=True)
class KnownRows:
    """The lake's decisions of a shard's rows (``stages.LakeLookup``) without the whole index: only rows whose unit the
    known-units store holds can be in the index (a run's commit adds both; forget removes both), and only their
    home partitions are opened. In a run, reading left those units out already: nothing is opened."""

    paths: lakefs.RunPaths
    config: DedupConfig
    storage: StorageConfig

    def decisions_of(self, doc_ids: Sequence[str]) -> KnownDecisions:
        try:
            held = np.flatnonzero(load_known_units(self.paths).contains(doc_ids))
        except FileNotFoundError:  # no store (a lake written by a bench or a test, not by runs): the whole index
            return run_index(self.paths, self.config, self.storage).decisions_of(doc_ids)
        if len(held) == 0:
            return KnownDecisions.none_found(len(doc_ids))
        homes = partition_of(doc_id_keys([doc_ids[i] for i in held.tolist()]), self.config.partitions)
        with partition_cache(self.paths, self.storage).opened(homes.tolist(), self.config) as index:
            return index.decisions_of(doc_ids)

    def query_unpartitioned(self, sigs: np.ndarray, sizes: np.ndarray) -> tuple[LakeMatches, LakeMatches]:
        """Nothing: the lake has no segment the partition tasks do not search (else ``whole``)."""
        return LakeMatches.none(), LakeMatches.none()


def partition_cache(paths: lakefs.RunPaths, storage: StorageConfig) -> PartitionCache:
    """The partitions of the lake's index a task opens (``flows.dedup.cache``)."""
    return PartitionCache(paths.lake, storage.cache_dir, storage.cache_max_bytes)


# A lake searched whole (older-format segments, or another banding's) as this process sees it during a run: opened
# (a bucket lake's brought into this machine's cache) by the first task of the run this process runs, not by
# each; it cannot change during the run.
_RUN_INDEX: dict[tuple[str, str], LakeIndex] = {}
_RUN_INDEX_LOCK = threading.Lock()


def run_index(paths: lakefs.RunPaths, config: DedupConfig, storage: StorageConfig) -> LakeIndex:
    """The lake's whole index on this machine (``flows.dedup.cache.local_index``), opened once per run and
    process: only for lakes searched whole."""
    key = (paths.lake.digest, paths.run_id)
    with _RUN_INDEX_LOCK:
        if key not in _RUN_INDEX:
            _RUN_INDEX.clear()  # an earlier run's
            index_dir, _ = local_index(paths.lake, storage.cache_dir, storage.cache_max_bytes)
            _RUN_INDEX[key] = LakeIndex.open(index_dir, config)
        return _RUN_INDEX[key]


@dataclass(frozen=True)
class PartitionWork:
    """What a partition task returns to the flow: a count per index partition (where its staged rows go next)
    and the bytes of the lake's index it downloaded into its machine's cache (0 on a local lake)."""

    counts: list[int]
    downloaded: int = 0


@contextmanager
def _partitions(paths: lakefs.RunPaths, cache: PartitionCache, parts: list[int], config: DedupConfig,
                storage: StorageConfig, whole: bool) -> Iterator[LakeIndex]:
    """The index as a partition task needs it: its own partitions only, or the whole index when ``whole``."""
    if whole:
        yield run_index(paths, config, storage)
        return
    with cache.opened(parts, config) as index:
        yield index


def link_partition(paths: lakefs.RunPaths, part: int, numbers: list[int], config: DedupConfig,
                   storage: StorageConfig, whole: bool = False) -> PartitionWork:
    """Dedup's second stage for one partition of the band keys: its verified links and its lake candidates
    (from the index's same partition only), staged. Counts: how many candidates go to each index partition."""
    cache = partition_cache(paths, storage)
    with _partitions(paths, cache, [part], config, storage, whole) as index:
        links, candidates = stages.link_partition(paths, part, numbers, config, index)
    links.save(paths, part)
    return PartitionWork(stages.save_candidates(paths, part, candidates, config.partitions), cache.downloaded)


def match_partition(paths: lakefs.RunPaths, part: int, sources: list[tuple[int, int, int]], config: DedupConfig,
                    storage: StorageConfig, whole: bool = False) -> PartitionWork:
    """The lake candidates homed in index partition ``part``, verified: each node's best matches there, staged
    when there are any, with the lake clusters they name. Counts: how many of those are homed in each index
    partition (all zero: no match)."""
    cache = partition_cache(paths, storage)
    with _partitions(paths, cache, [part], config, storage, whole) as index:
        matches = matching.match_partition(paths, part, sources, config, index)
    if not matches.num_rows:
        return PartitionWork([0] * config.partitions, cache.downloaded)
    matching.save_matches(paths, part, matches)
    return PartitionWork(matching.save_wanted(paths, part, matches, config.partitions), cache.downloaded)


def kept_partition(paths: lakefs.RunPaths, part: int, sources: list[tuple[int, int, int]], config: DedupConfig,
                   storage: StorageConfig) -> PartitionWork:
    """The kept documents homed in index partition ``part`` of the lake clusters the matches name, staged for the
    decide task (``stages.kept_partition``). Counts: theirs."""
    cache = partition_cache(paths, storage)
    with cache.opened([part], config) as index:
        return PartitionWork([matching.kept_partition(paths, part, sources, index)], cache.downloaded)


def decide_stage(paths: lakefs.RunPaths, numbers: list[int], config: DedupConfig, storage: StorageConfig,
                 matched: list[int], kept: list[int], whole: bool = False) -> dict[str, int]:
    """Decide the run's duplicates from every partition's staged links, the lake matches of the partitions
    ``matched`` and the kept documents the kept tasks of partitions ``kept`` staged (``whole``: read from the
    whole index instead); stage the decisions and the rows the index leaves out, for the index tasks and the write
    stage. Returns the run's counts of duplicates."""
    found = [stages.PartitionLinks.staged(paths, part) for part in range(config.partitions)]
    lookup = run_index(paths, config, storage) if whole else matching.StagedKept(paths, kept, config)
    decisions = decide_run(paths, numbers, found, config, lookup, matched)
    save_for_index(paths, decisions, unindexed_rows(paths, numbers, decisions))
    duplicates = decisions.filter(decisions.column("is_duplicate"))
    return {"duplicates": duplicates.num_rows,
            "clusters_with_duplicates": len(set(duplicates.column("dup_cluster").to_pylist()))}


def index_stage(paths: lakefs.RunPaths, part: int, numbers: list[int], config: DedupConfig) -> int:
    """The run's segment of index partition ``part``, staged (``flows.dedup.run_index``); its count of entries."""
    return write_partition(staged_index(paths), paths.run_id, paths, part, numbers, config)


def stage_index(paths: lakefs.RunPaths, written: dict[int, int], config: DedupConfig, new_index: bool) -> None:
    """Make the run's staged index whole on this machine before its commit: ``index.json`` for a new index, and
    the segments index tasks on other machines wrote (mirrored to a bucket lake's staging)."""
    root = staged_index(paths)
    if new_index and any(written.values()):
        write_index_file(root, config)
    if not paths.lake.remote:
        return
    for part in sorted(written):
        relative = f"{INDEX}/{partition_name(part)}/{paths.run_id}"
        if (paths.staging / relative / SEGMENT_META).is_file():
            continue
        names = paths.lake.children(f"{paths.staging_key}/{relative}")
        if SEGMENT_META not in names:
            continue  # the partition got no row
        for name in sorted(names, key=lambda n: n == SEGMENT_META):
            fetch_staged(paths, f"{relative}/{name}")


def run_segments(paths: lakefs.RunPaths) -> dict[int, dict[str, Any]]:
    """The ``meta.json`` of the run's staged index segment in each partition it has rows in (after
    ``stage_index``; before the commit moves them)."""
    found = {}
    for part, folder in partition_folders(staged_index(paths)).items():
        meta = folder / paths.run_id / SEGMENT_META
        if meta.is_file():
            found[part] = json.loads(meta.read_text())
    return found


def home_machine(part: int, hosts: Sequence[str]) -> str:
    """The machine of ``hosts`` that runs index partition ``part``'s tasks, so its cache keeps that partition from
    run to run: the highest of a hash of (host, partition) (rendezvous hashing), so a machine joining or leaving
    moves only the partitions it takes or had."""
    return max(hosts, key=lambda host: xxhash.xxh3_64_intdigest(f"{host}\0{part}".encode()))

"""The Prefect flow ``ingest``: read, normalize, extract, score, dedup, write, one task per stage and shard.

Thin by design: every task calls one function of the pure core (a shard's stages in ``flows.shard``,
the run's lifecycle in ``flows.run``); this module only schedules shards, reports progress, logs and
publishes artifacts. Prefect loads this file with ``flows/`` on ``sys.path``, so siftlake modules are
always imported as ``flows.<module>``.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.futures import PrefectFuture
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from flows import lake as lakefs
from flows import report, run, run_dedup, shard
from flows.config import IngestConfig, RunnerConfig, StorageConfig
from flows.dedup import DedupConfig
from flows.dedup import cache as index_cache
from flows.dedup.maintenance import compact_after_run
from flows.dedup.matching import match_sources
from flows.extract import ExtractConfig
from flows.quality import QualityConfig
from flows.read import InputFile, discover, plan_shards
from flows.storage import Store

# Data flows through these tasks: Prefect must not hash thousands of documents for caching (NO_CACHE),
# nor store them as results. Tasks that do I/O retry with backoff.
_IO_RETRY_DELAYS = [1.0, 5.0]


@task(name="read", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_delay_seconds=_IO_RETRY_DELAYS)
def read_task(number: int, files: list[InputFile], config: IngestConfig, paths: lakefs.RunPaths) -> shard.ShardBatch:
    known = shard.load_known_units(paths)
    return shard.read_stage(number, files, config.read, known, config.storage.options, shard.load_blocklist(paths))


@task(name="normalize", cache_policy=NO_CACHE, persist_result=False)
def normalize_task(batch: shard.ShardBatch) -> shard.ShardBatch:
    return shard.normalize_stage(batch)


@task(name="extract", cache_policy=NO_CACHE, persist_result=False)
def extract_task(batch: shard.ShardBatch, config: ExtractConfig) -> shard.ShardBatch:
    return shard.extract_stage(batch, config)


@task(name="score", cache_policy=NO_CACHE, persist_result=False)
def score_task(batch: shard.ShardBatch, config: QualityConfig) -> shard.ShardBatch:
    return shard.score_stage(batch, config)


@task(name="fingerprint", cache_policy=NO_CACHE, persist_result=False)
def fingerprint_task(batch: shard.ShardBatch, config: DedupConfig) -> shard.ShardBatch:
    return shard.fingerprint_stage(batch, config)


@task(name="stage", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_delay_seconds=_IO_RETRY_DELAYS)
def stage_task(batch: shard.ShardBatch, paths: lakefs.RunPaths) -> shard.ShardSummary:
    return shard.stage_shard(batch, paths)


@task(name="dedup-prepare", cache_policy=NO_CACHE, persist_result=False, retries=2,
      retry_delay_seconds=_IO_RETRY_DELAYS)
def prepare_task(paths: lakefs.RunPaths, number: int, config: DedupConfig, storage: StorageConfig,
                 whole: bool) -> int:
    lakefs.use_system_memory_pool()
    return run_dedup.prepare_dedup(paths, number, config, storage, whole)


@task(name="dedup-link", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_delay_seconds=_IO_RETRY_DELAYS)
def link_task(paths: lakefs.RunPaths, part: int, numbers: list[int], config: DedupConfig,
              storage: StorageConfig, whole: bool) -> run_dedup.PartitionWork:
    lakefs.use_system_memory_pool()
    return run_dedup.link_partition(paths, part, numbers, config, storage, whole)


@task(name="dedup-match", cache_policy=NO_CACHE, persist_result=False, retries=2,
      retry_delay_seconds=_IO_RETRY_DELAYS)
def match_task(paths: lakefs.RunPaths, part: int, sources: list[tuple[int, int, int]], config: DedupConfig,
               storage: StorageConfig, whole: bool) -> run_dedup.PartitionWork:
    lakefs.use_system_memory_pool()
    return run_dedup.match_partition(paths, part, sources, config, storage, whole)


@task(name="dedup-kept", cache_policy=NO_CACHE, persist_result=False, retries=2,
      retry_delay_seconds=_IO_RETRY_DELAYS)
def kept_task(paths: lakefs.RunPaths, part: int, sources: list[tuple[int, int, int]], config: DedupConfig,
              storage: StorageConfig) -> run_dedup.PartitionWork:
    lakefs.use_system_memory_pool()
    return run_dedup.kept_partition(paths, part, sources, config, storage)


@task(name="dedup-decide", cache_policy=NO_CACHE, persist_result=False, retries=2,
      retry_delay_seconds=_IO_RETRY_DELAYS)
def decide_task(paths: lakefs.RunPaths, numbers: list[int], config: DedupConfig, storage: StorageConfig,
                matched: list[int], kept: list[int], whole: bool) -> dict[str, int]:
    lakefs.use_system_memory_pool()
    return run_dedup.decide_stage(paths, numbers, config, storage, matched, kept, whole)


@task(name="dedup-index", cache_policy=NO_CACHE, persist_result=False, retries=2,
      retry_delay_seconds=_IO_RETRY_DELAYS)
def index_task(paths: lakefs.RunPaths, part: int, numbers: list[int], config: DedupConfig) -> int:
    lakefs.use_system_memory_pool()
    return run_dedup.index_stage(paths, part, numbers, config)


@task(name="write", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_delay_seconds=_IO_RETRY_DELAYS)
def write_task(paths: lakefs.RunPaths, manifest: dict[str, Any], documents: run.RunDocuments,
               config: IngestConfig, lease: lakefs.LeaseLock | None) -> list[str]:
    return run.commit_run(paths, manifest, documents, config.storage.cache_dir, lease)


@task(name="documents", cache_policy=NO_CACHE, persist_result=False, retries=2,
      retry_delay_seconds=_IO_RETRY_DELAYS)
def documents_task(paths: lakefs.RunPaths, numbers: list[int]) -> run.RunDocuments:
    lakefs.use_system_memory_pool()
    return run.write_documents(paths, numbers)


def task_runner(config: RunnerConfig, sandboxed_extraction: bool) -> TaskRunner[Any]:
    """The task runner the config asks for (``auto``: see ``RunnerConfig.kind``)."""
    workers = config.worker_count()
    kind = config.local_kind(sandboxed_extraction)
    if kind == "thread":
        return ThreadPoolTaskRunner(max_workers=workers)
    _share_api_with_workers()
    if kind == "dask":
        from prefect_dask.task_runners import DaskTaskRunner  # optional extra: pip install 'siftlake[dask]'

        if config.dask_address:
            return DaskTaskRunner(address=config.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True})
    return ProcessPoolTaskRunner(max_workers=workers)


def _share_api_with_workers() -> None:
    """Point worker processes at this run's Prefect API; without it each starts a temporary server."""
    if not os.environ.get("PREFECT_API_URL"):
        with get_client(sync_client=True) as client:
            os.environ["PREFECT_API_URL"] = str(client.api_url).rstrip("/")


def process_shards(runner: TaskRunner[Any], config: IngestConfig, shards: list[list[InputFile]],
                   paths: lakefs.RunPaths, done: list[int], whole: bool) -> list[shard.ShardSummary]:
    """Run the per-shard stages, dedup's first one included (``whole``: the lake is searched whole), on the task
    runner, a bounded number of shards in flight, reporting progress. The runner is used directly, not through a
    subflow: a subflow run costs ~1 s (its creation, and the wait for its heartbeat thread at the end)."""
    workers = config.runner.worker_count()
    window = config.runner.shards_in_flight or 2 * workers
    todo = [n for n in range(len(shards)) if n not in done]
    progress = cast(UUID, create_progress_artifact(progress=_percent(len(done), len(shards)), key="ingest-progress",
                                        description=f"shards staged, run {paths.run_id}"))
    in_flight: list[PrefectFuture[shard.ShardSummary]] = []
    summaries: list[shard.ShardSummary] = []
    for number in todo:
        in_flight.append(_submit_shard(runner, number, shards[number], config, paths, whole))
        while len(in_flight) >= window or (number == todo[-1] and in_flight):
            summaries.append(in_flight.pop(0).result())
            finished = len(done) + len(summaries)
            update_progress_artifact(progress, _percent(finished, len(shards)))
            report.print_progress(finished, len(shards))
    return summaries


def find_duplicates(runner: TaskRunner[Any], config: IngestConfig, paths: lakefs.RunPaths, numbers: list[int],
                    listing: index_cache.IndexListing, prepared: dict[int, int] | None = None) -> dict[str, int]:
    """Dedup as distributed stages (``flows.dedup.stages``), each a task on the runner: one per shard (but those
    ``prepared`` by their shard task, with their count of documents), one per
    partition of the band keys (its links, and its candidates from the lake's same partition, staged), one per index
    partition given candidates (verified against the entries homed there), one per index partition homing the kept
    documents of the lake clusters matched, the decision, then one per index partition writing the run's segment of
    it. A task opens only its own partitions of the lake's index (a bucket lake's: in its machine's cache); a lake
    with segments the partition tasks cannot search is searched whole (``IndexListing.searched_whole``). Tasks hand
    each other files in the run's staging (``flows.dedup.staged``): this process holds counts only. The run's
    segment of the index is written after (``index_run``)."""
    whole = listing.searched_whole(config.dedup)
    parts = range(config.dedup.partitions)
    submit = {"paths": paths, "numbers": numbers, "config": config.dedup}
    on_lake = {"config": config.dedup, "storage": config.storage, "whole": whole}
    prepared = prepared or {}
    preparing = [runner.submit(prepare_task, {"paths": paths, "number": n, **on_lake})
                 for n in numbers if n not in prepared]
    documents = sum(prepared.values()) + sum(future.result() for future in preparing)
    on_home = _home_machines(runner)
    linking = _per_partition(runner, link_task, {part: {**submit, **on_lake, "part": part} for part in parts}, on_home)
    linked = [future.result() for future in linking.values()]
    homes = [work.counts for work in linked]  # [link partition][index partition]: candidates
    matching = _per_partition(runner, match_task, {part: {"paths": paths, "part": part, "sources": found, **on_lake}
                                                   for part in parts if (found := match_sources(homes, part))}, on_home)
    matches = {part: future.result() for part, future in matching.items()}
    wanted = [matches[part].counts if part in matches else [0] * len(parts) for part in parts]
    matched = [part for part in parts if any(wanted[part])]
    kept = [] if whole else [part for part in parts if match_sources(wanted, part)]
    keeping = _per_partition(runner, kept_task, {part: {"paths": paths, "part": part, "config": config.dedup,
                                                        "sources": match_sources(wanted, part),
                                                        "storage": config.storage} for part in kept}, on_home)
    fetched = sum(work.downloaded for work in [*linked, *matches.values(), *(f.result() for f in keeping.values())])
    return {"documents": documents, **({"index_bytes_downloaded": fetched} if paths.lake.remote else {}),
            **runner.submit(decide_task, {**submit, **on_lake, "matched": matched, "kept": kept}).result()}


def index_run(runner: TaskRunner[Any], config: IngestConfig, paths: lakefs.RunPaths, numbers: list[int],
              listing: index_cache.IndexListing) -> None:
    """The run's segment of the lake's index, staged for the commit: one task per index partition."""
    submit = {"paths": paths, "numbers": numbers, "config": config.dedup}
    indexed = {part: runner.submit(index_task, {**submit, "part": part}) for part in range(config.dedup.partitions)}
    new_index = listing.index_file is None
    run_dedup.stage_index(paths, {part: future.result() for part, future in indexed.items()}, config.dedup, new_index)


def _home_machines(runner: TaskRunner[Any]) -> Callable[[int], AbstractContextManager[object]]:
    """Where a partition's tasks are sent: on a Dask cluster of several machines, the partition's own machine
    (``run_dedup.home_machine``, a preference: Dask runs it elsewhere when that machine is busy or gone), so a
    machine's index cache holds the same partitions from run to run; elsewhere, anywhere."""
    client = getattr(runner, "client", None)  # a DaskTaskRunner's (made on first use)
    hosts = sorted({str(w["host"]) for w in client.scheduler_info()["workers"].values()}) if client else []
    if len(hosts) < 2:
        return lambda part: nullcontext()
    from dask.base import annotate  # with prefect-dask (the dask extra)

    return lambda part: annotate(workers=[run_dedup.home_machine(part, hosts)], allow_other_workers=True)


def _per_partition(runner: TaskRunner[Any], task: Any, parameters: dict[int, dict[str, Any]],
                   on_home: Callable[[int], AbstractContextManager[object]]) -> dict[int, PrefectFuture[Any]]:
    """``task`` submitted once per partition, with its parameters, each to the partition's machine."""
    futures = {}
    for part, given in parameters.items():
        with on_home(part):
            futures[part] = runner.submit(task, given)
    return futures


@task(name="shard", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_delay_seconds=_IO_RETRY_DELAYS)
def shard_task(number: int, files: list[InputFile], config: IngestConfig, paths: lakefs.RunPaths,
               whole: bool = False) -> shard.ShardSummary:
    """Every stage of one shard, in the worker that reads it: the shard's pages never travel back to
    the flow's process. The shard goes through the stages a chunk at a time, extraction overlapping
    the other stages (``shard.process_shard``), then dedup's first stage (``run_dedup.prepare_dedup``;
    ``whole``: the lake is searched whole). A retry (an I/O error while reading or staging) redoes the shard.

    The stages are plain calls: a Prefect task run costs ~9 ms of CPU between the client and the
    server, and one per stage took 7% of a run's CPU (bench/e2e). ``runner.stage_tasks`` makes
    each stage its own task run instead, with its state and time in the Prefect UI.
    """
    lakefs.use_system_memory_pool()  # this worker's process, as the flow's
    if config.runner.stage_tasks:
        summary = _stages_as_tasks(number, files, config, paths)
    else:
        summary = shard.process_shard(number, files, config, paths)
    # Here rather than as a task of its own per shard: a task run costs the Prefect API ~30 ms of CPU, and
    # the shard's rows are on this machine already. A shard staged by an earlier attempt gets its own task.
    run_dedup.prepare_dedup(paths, number, config.dedup, config.storage, whole)
    return summary


def _stages_as_tasks(number: int, files: list[InputFile], config: IngestConfig,
                     paths: lakefs.RunPaths) -> shard.ShardSummary:
    """The same stages, each a nested task run, over the whole shard at once (not chunked). A batch is
    passed ``quote``d: Prefect would otherwise walk every document of it looking for futures before
    each stage (~1.5 ms of CPU per page)."""
    batch = read_task(number, files, config, paths)
    batch = normalize_task(_quoted(batch))
    batch = extract_task(_quoted(batch), config.extract)
    batch = score_task(_quoted(batch), config.quality)
    batch = fingerprint_task(_quoted(batch), config.dedup)
    return stage_task(_quoted(batch), paths)


def _quoted(batch: shard.ShardBatch) -> shard.ShardBatch:
    """``quote(batch)``, typed as what the task receives (Prefect unwraps it)."""
    return cast(shard.ShardBatch, quote(batch))


def _submit_shard(runner: TaskRunner[Any], number: int, files: list[InputFile], config: IngestConfig,
                  paths: lakefs.RunPaths, whole: bool) -> PrefectFuture[shard.ShardSummary]:
    """Submit a shard to the task runner: only its file list goes out and a small summary comes back.

    Submitting each stage from the flow instead would send every shard's pages through the flow's
    process five times (a process pool returns each result to it): 3.0 GB peak RSS at 1,000 documents
    against 1.5 GB this way (bench/e2e).
    """
    summary: PrefectFuture[shard.ShardSummary] = runner.submit(
        shard_task, {"number": number, "files": files, "config": config, "paths": paths, "whole": whole})
    return summary


def _percent(done: int, total: int) -> float:
    return 100.0 if total == 0 else round(100.0 * done / total, 1)


@flow(name="ingest", log_prints=True)
def ingest(config: IngestConfig = IngestConfig()) -> dict[str, Any]:  # noqa: B008 - pydantic default is immutable
    """Ingest ``config.source`` into the lake at ``config.lake``; return the run's counts."""
    lakefs.use_system_memory_pool()
    # The run report's page builder (matplotlib, duckdb: ~1.5 s of imports) loads while the shards run.
    threading.Thread(target=importlib.import_module, args=("flows.report.build",), daemon=True).start()
    logger = get_run_logger()
    lake = Store(config.lake, config.storage.options)
    lake.check_reachable()
    with lakefs.lake_lock(lake, config.lock_wait_s, config.storage.lock_lease_s) as lease:
        for run_id in lakefs.recover(lake):
            logger.info("finished the interrupted commit of run %s", run_id)
        discovery = discover(config.source, config.storage.options)
        files, unchanged = lakefs.changed_inputs(lake, discovery.root, discovery.files)
        shards = plan_shards(files, config.read, config.storage.options)
        opened = run.open_run(lake, config, shards)
        for note in opened.left_alone:
            logger.warning("%s", note)
        paths, started = opened.paths, opened.started
        if built := run.prepare_known_units(paths, discovery.rejects):  # a lake from before the store
            logger.info("built the lake's known-units store (%s): %d unit ids, from its tables", lakefs.UNITS, built)
        lakefs.save_inputs(paths, discovery.root, files)
        done = sorted(shard.staged_shards(paths))
        if done:
            logger.info("resuming run %s: %d of %d shards already staged", paths.run_id, len(done), len(shards))
        listing = _list_index(lake, config)
        with task_runner(config.runner, config.extract.sandbox) as runner:
            summaries = process_shards(runner, config, shards, paths, done, listing.searched_whole(config.dedup))
            numbers = list(range(len(shards)))
            prepared = {summary.number: summary.documents for summary in summaries}
            dedup = find_duplicates(runner, config, paths, numbers, listing, prepared)
            # The documents file is written by a worker (the pages never pass through this process) while the
            # other workers write the run's index segment: both need only the decisions.
            documents = runner.submit(documents_task, {"paths": paths, "numbers": numbers})
            index_run(runner, config, paths, numbers, listing)
            written = documents.result()
        lakefs.pull_staged(paths)  # shards staged by workers on other machines: their counts, then their rows
        counts, seconds = report.run_counts(paths, dedup)
        counts.update(shards=len(shards), shards_resumed=len(done), files_unchanged=unchanged,
                      **({"index_segments": listing.segments, "index_bytes": listing.size,
                          "index_bytes_downloaded": dedup["index_bytes_downloaded"]} if lake.remote else {}))
        added = run_dedup.run_segments(paths)
        manifest = run.manifest_for(config, paths.run_id, counts, seconds, started)
        write_task(paths, manifest, cast(run.RunDocuments, quote(written)), config, lease)
        _compact_index(lake, listing, added, config, paths.run_id)
        _merge_known_units(lake, config, lease)
    _publish(lake, manifest)
    return counts


def _list_index(lake: Store, config: IngestConfig) -> index_cache.IndexListing:
    """The lake's index as published (checked against the run's dedup config), listed once for the run's plan:
    tasks open their own partitions of it."""
    listing = index_cache.list_index(lake, config.dedup, config.storage.cache_dir)
    get_run_logger().info("near-duplicate index: %d segment(s) in %d partition(s)%s", listing.segments,
                          len(listing.partitions), " (searched whole: older-format segments or another banding; "
                          "`siftlake index migrate` folds them)" if listing.searched_whole(config.dedup) else "")
    return listing


def _compact_index(lake: Store, listing: index_cache.IndexListing, added: dict[int, dict[str, Any]],
                   config: IngestConfig, run_id: str) -> None:
    cache = index_cache.PartitionCache(lake, config.storage.cache_dir, config.storage.cache_max_bytes)
    merged = compact_after_run(lake, listing, added, config.dedup, run_id, cache)
    if merged is not None:
        get_run_logger().info("near-duplicate index: %s", merged)


def _merge_known_units(lake: Store, config: IngestConfig, lease: lakefs.LeaseLock | None) -> None:
    """Merge the known-units store's full tiers. The run is committed already: a merge that fails is logged, and
    the next run merges (a merge cut short loses no key)."""
    try:
        merged = lakefs.merge_known_units(lake, config.storage.scratch_dir, lease.check if lease else None)
    except Exception as err:
        get_run_logger().warning("the known-units store was not merged (the next run merges it): %s", err)
        return
    if merged:
        get_run_logger().info("merged the known-units store's files into %s", ", ".join(merged))


def _publish(lake: Store, manifest: dict[str, Any]) -> None:
    """Log the counts and publish them as artifacts: the counts table, and the run summary (languages, sites,
    quality, duplicates with titles, rejects) that links the run's HTML report, written into the lake at
    ``_reports/<run_id>.html``. The run is committed already: a report that fails is logged, not raised."""
    logger = get_run_logger()
    counts = manifest["counts"]
    run_id = manifest["run_id"]
    logger.info("run %s: %s", run_id, {k: v for k, v in counts.items() if not isinstance(v, dict)})
    create_table_artifact(table=report.count_rows(manifest), key="ingest-counts",
                          description=f"Counts per stage and reject reason, run {run_id}")
    try:
        where, data = report.write_run_report(lake, run_id)
        markdown = report.summary_markdown(data, where)
        logger.info("run report: %s", where)
    except Exception as err:  # the report is a view: the run's data is committed already
        logger.warning("the run's HTML report could not be written: %s", err)
        markdown = report.run_markdown(lake, manifest)
    create_markdown_artifact(markdown=markdown, key="ingest-report",
                             description=f"Run summary: quality, languages, sites, duplicates, rejects; run {run_id}")

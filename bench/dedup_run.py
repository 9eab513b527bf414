"""A run's dedup on synthetic signatures (no extraction), against lakes of growing size: time and memory of each
stage, of the flow's process, and of one process doing it all. Not run in CI.

    python -m bench.dedup_run --docs 100000 1000000 --partitions 16              # an empty lake
    python -m bench.dedup_run --docs 100000 --lakes 1000000 3000000 10000000 --partitions 64 --no-single

For each lake size L (ascending; one lake, grown run by run with the flow's own index writer and size-tier
compaction, ``bench.scale.build_partitioned``) and each run size N: a staged run of N documents (random
signatures; 5% light near-copies of others, 2% exact copies, and 5% near-copies of lake entries when L > 0;
shards of ``--shard-docs``) is deduplicated
(a) by the stages, each in a child process so its peak RSS is its own: every shard's ``prepare`` (one child: the
    peak is the largest shard's), every partition's ``link``, every index partition's ``match`` and ``kept``, the
    ``decide`` task, every index partition's ``index`` task; for link, match and kept, the bytes one task read
    from disk (``/proc/self/io`` read_bytes: its index partition's pages and staged slices not in the page cache),
    the largest and the mean;
(b) by the flow's own code (``flows.ingest.find_duplicates``, then ``index_run``, in a Prefect flow) on each of
    ``--runners`` with 2 workers (a process pool, threads, a Dask LocalCluster): the flow process's peak RSS and the
    largest worker's,
    and the wall time and the flow process's CPU;
(c) unless ``--no-single``: by one process holding the run (``resolve``, then the run's index segment), as the
    flow did before dedup became stages.
With ``--warm`` the stages run twice and the second pass is reported: the first reads the index's pages
from disk (the 10M lake's 17 GB does not stay in these machines' page cache), so it measures I/O as well.
Prints wall and CPU seconds and peak RSS per step; per N, the stages' total time against L and its growth exponent
(time ~ L^k). Disk: the lake's index takes ~1.7 KB a document (10M: ~17 GB) under ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.scale import build_partitioned, entries_of_run
from bench.support.meters import peak_rss_mb
from flows.config import StorageConfig
from flows.dedup import DedupBatch, DedupConfig, LakeIndex, resolve
from flows.dedup.cache import list_index
from flows.dedup.matching import match_sources
from flows.dedup.stages import signature_matrix
from flows.lake.layout import RunPaths, use_system_memory_pool
from flows.run_dedup import (
    PartitionWork,
    decide_stage,
    index_stage,
    kept_partition,
    link_partition,
    match_partition,
    prepare_dedup,
)
from flows.storage import Store

LAKE_RUN_DOCS = 250_000
"""Entries a lake-building run adds (``bench.scale``'s runs: lake entries are regenerated from their seed)."""


def synthetic_run(paths: RunPaths, docs: int, shard_docs: int, config: DedupConfig, lake_docs: int,
                  seed: int = 1) -> list[int]:
    """Stage ``docs`` synthetic documents in shards: random signatures with planted near and exact copies, and
    near-copies of the lake's first run's entries when the lake has some."""
    rng = np.random.default_rng(seed)
    sigs = rng.integers(0, 2**32, size=(docs, config.num_perm), dtype=np.uint32)
    near = rng.choice(docs, size=docs // 20, replace=False)
    sources = rng.integers(0, docs, size=len(near))
    for row, source in zip(near.tolist(), sources.tolist(), strict=True):
        sigs[row] = sigs[source]
        changed = rng.choice(config.num_perm, size=config.num_perm // 10, replace=False)
        sigs[row, changed] = rng.integers(0, 2**32, size=len(changed), dtype=np.uint32)
    exact = rng.choice(docs, size=docs // 50, replace=False)
    sigs[exact] = sigs[rng.integers(0, docs, size=len(exact))]
    if lake_docs:
        lake = entries_of_run(0, min(LAKE_RUN_DOCS, lake_docs), config.num_perm).signatures
        planted = rng.choice(docs, size=docs // 20, replace=False)
        copies = lake[rng.choice(len(lake), size=len(planted), replace=False)]
        sigs[planted] = np.where(rng.random(copies.shape) < 0.1, sigs[planted], copies)
    numbers = []
    for number, start in enumerate(range(0, docs, shard_docs)):
        stop = min(docs, start + shard_docs)
        table = pa.table({
            "doc_id": [f"doc-{i:09d}" for i in range(start, stop)],
            "content_hash": [f"{int(x):032x}" for x in sigs[start:stop, 0]],
            "signature": pa.array([row.tobytes() for row in sigs[start:stop]], pa.binary()),
            "quality_score": rng.random(stop - start),
            "n_chars": rng.integers(500, 5000, stop - start),
            "n_shingles": pa.array(np.full(stop - start, 300), pa.uint32()),
        })
        paths.shard_file(number).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, paths.shard_file(number))
        numbers.append(number)
    return numbers


def _single_process(paths: RunPaths, numbers: list[int], config: DedupConfig, index_dir: Path) -> dict[str, int]:
    columns = ["doc_id", "content_hash", "signature", "quality_score", "n_chars", "n_shingles"]
    table = pa.concat_tables([pq.read_table(paths.shard_file(n), columns=columns) for n in numbers])
    batch = DedupBatch(table.column("doc_id").to_pylist(), table.column("content_hash").to_pylist(),
                       signature_matrix(table.column("signature"), config.num_perm),
                       table.column("quality_score").to_numpy(), table.column("n_chars").to_numpy(),
                       table.column("n_shingles").to_numpy())
    del table
    index = LakeIndex.open(index_dir, config)
    decisions = resolve(batch, index, config)
    index.write_segment(paths.staging / "single-segment", "single", batch, decisions)
    return {"duplicates": int(decisions.is_duplicate.sum())}


def _flow(state: dict[str, Any], paths: RunPaths, config: DedupConfig, kind: str) -> dict[str, Any]:
    """The flow's own dedup code on 2 workers of runner ``kind``; peak RSS of this process and of its largest
    worker process (none for threads)."""
    import psutil
    from prefect import flow

    from flows.config import IngestConfig
    from flows.ingest import find_duplicates, index_run, task_runner

    ingest = IngestConfig(source=state["lake"], lake=state["lake"], dedup=config.model_dump(),
                          runner={"kind": kind, "workers": 2})
    me, done = psutil.Process(), threading.Event()
    peak_mb, cpu_s = [0.0], dict[int, float]()

    def watch() -> None:  # the pool's or cluster's workers (not the Prefect API server this process may start)
        while not done.wait(0.2):
            for child in me.children(recursive=True):
                try:
                    if "multiprocessing" in " ".join(child.cmdline()):
                        peak_mb[0] = max(peak_mb[0], child.memory_info().rss / 2**20)
                        times = child.cpu_times()
                        cpu_s[child.pid] = times.user + times.system
                except psutil.Error:
                    pass

    @flow(name="bench-dedup")
    def dedup_flow() -> dict[str, int]:
        with task_runner(ingest.runner, False) as runner:
            listing = list_index(paths.lake, config)
            counts = find_duplicates(runner, ingest, paths, state["numbers"], listing)
            index_run(runner, ingest, paths, state["numbers"], listing)
            return counts

    before = peak_rss_mb()
    threading.Thread(target=watch, daemon=True).start()
    wall = time.perf_counter()
    counts = dedup_flow()
    done.set()
    return {"wall_s": round(time.perf_counter() - wall, 2), "flow_rss_mb": round(peak_rss_mb()),
            "flow_rss_before_mb": round(before), "largest_worker_mb": round(peak_mb[0]),
            "workers_cpu_s": round(sum(cpu_s.values()), 1), "duplicates": counts["duplicates"]}


def child(step: str, work: str) -> None:
    """One step in this process; prints its seconds and peak RSS as JSON."""
    use_system_memory_pool()  # as the flow and its tasks do
    state = json.loads((Path(work) / "state.json").read_text())
    paths = RunPaths(state["lake"], "bench-run", "2026-01-01")
    config = DedupConfig(partitions=state["partitions"])
    numbers, index_dir = state["numbers"], Path(state["lake"]) / "_index"
    wall, cpu = time.perf_counter(), time.process_time()
    result: Any = None
    if step == "single":
        result = _single_process(paths, numbers, config, index_dir)
    elif step == "prepare":
        result = sum(prepare_dedup(paths, n, config, StorageConfig()) for n in numbers)
    elif step == "link":
        work_done = [_metered(partial(link_partition, paths, part, numbers, config, StorageConfig()))
                     for part in range(config.partitions)]
        homes = [done.counts for done, _ in work_done]
        (Path(work) / "homes.json").write_text(json.dumps(homes))
        result = {"candidates": sum(map(sum, homes)), **_read_per_task([read for _, read in work_done])}
    elif step == "match":
        homes = json.loads((Path(work) / "homes.json").read_text())
        found = {part: _metered(partial(match_partition, paths, part, sources, config, StorageConfig()))
                 for part in range(config.partitions) if (sources := match_sources(homes, part))}
        wanted = [found[part][0].counts if part in found else [0] * config.partitions
                  for part in range(config.partitions)]
        (Path(work) / "wanted.json").write_text(json.dumps(wanted))
        result = {"clusters": sum(map(sum, wanted)), **_read_per_task([read for _, read in found.values()])}
    elif step == "kept":
        wanted = json.loads((Path(work) / "wanted.json").read_text())
        kept = {part: _metered(partial(kept_partition, paths, part, sources, config, StorageConfig()))
                for part in range(config.partitions) if (sources := match_sources(wanted, part))}
        (Path(work) / "kept.json").write_text(json.dumps(sorted(kept)))
        result = {"documents": sum(done.counts[0] for done, _ in kept.values()),
                  **_read_per_task([read for _, read in kept.values()])}
    elif step == "decide":
        wanted = json.loads((Path(work) / "wanted.json").read_text())
        kept = json.loads((Path(work) / "kept.json").read_text())
        matched = [part for part, counts in enumerate(wanted) if any(counts)]
        result = decide_stage(paths, numbers, config, StorageConfig(), matched, kept)["duplicates"]
    elif step == "index":
        shutil.rmtree(paths.staging / "_index", ignore_errors=True)  # a second pass (--warm) writes it again
        result = sum(index_stage(paths, part, numbers, config) for part in range(config.partitions))
    elif step.startswith("flow-"):
        result = _flow(state, paths, config, step.removeprefix("flow-"))
    print(json.dumps({"step": step, "wall_s": round(time.perf_counter() - wall, 2),
                      "cpu_s": round(time.process_time() - cpu, 2), "peak_rss_mb": round(peak_rss_mb()),
                      "result": result}))


def _run_child(step: str, work: Path) -> dict[str, Any]:
    env = dict(os.environ, PREFECT_HOME=str(work / "prefect-home"), PREFECT_LOGGING_LEVEL="WARNING")
    env.pop("PREFECT_API_URL", None)
    out = subprocess.run([sys.executable, "-m", "bench.dedup_run", "--child", step, str(work)], check=True,
                         capture_output=True, text=True, env=env)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


STAGES = ("prepare", "link", "match", "kept", "decide", "index")


def _read_bytes() -> int:
    """Bytes this process has read from storage (``/proc/self/io``: page-cache misses, mapped pages included)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    return 0


def _metered(task: Callable[[], PartitionWork]) -> tuple[PartitionWork, int]:
    """A partition task's result and the bytes it read from storage (its index partition and staged slices)."""
    before = _read_bytes()
    done = task()
    return done, _read_bytes() - before


def _read_per_task(read: list[int]) -> dict[str, float]:
    """The largest and mean bytes read by one task of a stage, in MB."""
    return {"task_read_max_mb": round(max(read, default=0) / 1e6, 1),
            "task_read_mean_mb": round(sum(read) / max(len(read), 1) / 1e6, 1)}


def bench_run(work: Path, lake_dir: Path, lake_docs: int, docs: int, args: argparse.Namespace) -> dict[str, Any]:
    shutil.rmtree(lake_dir / "_staging", ignore_errors=True)
    paths = RunPaths(Store(str(lake_dir)), "bench-run", "2026-01-01")
    numbers = synthetic_run(paths, docs, args.shard_docs, DedupConfig(partitions=args.partitions), lake_docs)
    (work / "state.json").write_text(json.dumps({"lake": str(lake_dir), "numbers": numbers,
                                                 "partitions": args.partitions}))
    flows = [f"flow-{kind}" for kind in args.runners]
    steps = ([] if args.no_single else ["single"]) + [*STAGES, *flows]
    if args.warm:  # a first pass reads the index into the page cache; the second is reported
        for step in STAGES:
            _run_child(step, work)
    rows = {step: _run_child(step, work) for step in steps}
    print(f"\nL = {lake_docs:,} indexed, N = {docs:,} documents, P = {args.partitions}, shards of "
          f"{args.shard_docs:,}", flush=True)
    for step, row in rows.items():
        print(f"  {step:<13} wall {row['wall_s']:>7.1f} s  cpu {row['cpu_s']:>7.1f} s  "
              f"peak RSS {row['peak_rss_mb']:>6} MB  ({row['result']})", flush=True)
    stages_cpu = sum(rows[s]["cpu_s"] for s in STAGES)
    stages_wall = sum(rows[s]["wall_s"] for s in STAGES)
    print(f"  stages: {stages_wall:.1f} s wall, {stages_cpu:.1f} s CPU in all; largest stage process "
          f"{max(rows[s]['peak_rss_mb'] for s in STAGES)} MB", flush=True)
    for step in flows:
        flow = rows[step]["result"]
        print(f"  {step}: {flow['wall_s']:.1f} s on 2 workers, its process {flow['flow_rss_mb']} MB "
              f"({flow['flow_rss_before_mb']} MB before dedup) and {rows[step]['cpu_s']:.1f} s CPU, largest worker "
              f"{flow['largest_worker_mb']} MB, workers {flow['workers_cpu_s']:.1f} s CPU", flush=True)
    return {"cpu_s": stages_cpu, "wall_s": stages_wall}


def grow_lake(index_dir: Path, partitions: int, have: int, want: int) -> None:
    if want > have:
        started = time.perf_counter()
        build_partitioned(index_dir, partitions, want, LAKE_RUN_DOCS, start=have)
        size = sum(f.stat().st_size for f in index_dir.rglob("*") if f.is_file())
        print(f"\n# lake grown to {want:,} entries in {time.perf_counter() - started:.0f} s: "
              f"{size / 2**30:.1f} GiB on disk ({size / want:.0f} bytes a document)", flush=True)
        parts = [sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) for folder in index_dir.glob("p*")]
        print(f"# a partition task on a machine without it in its cache downloads its partition (bucket lake): "
              f"{sum(parts) / len(parts) / 1e6:.0f} MB on average, {max(parts) / 1e6:.0f} MB at most", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--lakes", type=int, nargs="+", default=[0])
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--shard-docs", type=int, default=10_000)
    parser.add_argument("--no-single", action="store_true", help="skip the single-process baseline")
    parser.add_argument("--warm", action="store_true",
                        help="run the stages twice and report the second pass (the index's pages then in memory)")
    parser.add_argument("--runners", nargs="+", choices=["process", "thread", "dask"], default=["process"],
                        help="the task runners the flow's dedup is measured on (2 workers each)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the lake is built (default: a temp dir)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    times: dict[int, list[tuple[int, float]]] = {n: [] for n in args.docs}
    with tempfile.TemporaryDirectory(prefix="dedup-run-", dir=args.workdir) as tmp:
        work, have = Path(tmp), 0
        lake_dir = work / "lake"
        for lake_docs in sorted(args.lakes):
            grow_lake(lake_dir / "_index", args.partitions, have, lake_docs)
            have = max(have, lake_docs)
            for docs in args.docs:
                times[docs].append((lake_docs, bench_run(work, lake_dir, lake_docs, docs, args)["cpu_s"]))
    for docs, points in times.items():
        grown = [(lake, cpu) for lake, cpu in points if lake]
        if len(grown) >= 2:
            (l0, t0), (l1, t1) = grown[0], grown[-1]
            print(f"\nN = {docs:,}: the stages' CPU {t0:.1f} s at L = {l0:,}, {t1:.1f} s at L = {l1:,}: x{t1 / t0:.2f},"
                  f" growth exponent {math.log(t1 / t0) / math.log(l1 / l0):.2f}")


if __name__ == "__main__":
    main()

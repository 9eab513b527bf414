"""Scale of the lake's near-duplicate index (issue 22): query time against lakes of L synthetic entries,
partitioned (P partitions) vs the index of format 2 siftlake wrote before the partitions, index bytes per
document, peak RSS of compaction. Not run in CI.

    python -m bench.scale                                     # lakes of 1M and 3M entries, P = 1, 16, 64
    python -m bench.scale --lakes 200000 --partitions 16      # a quick look

For each lake size L, every step in a child process (so each peak RSS is that step's alone):

1. baseline: the lake as the old flow left it after compaction, segments of 500,000 entries (its cap),
   built run by run with the old writer and the old compaction (``tests/support/legacy_index.py``; their
   peak RSS is the old compaction's) and queried by the old per-segment path, which ``LakeIndex`` still
   runs for such segments (``Query.legacy``);
2. for each P: the lake built run by run (``--run-docs`` entries a run), the flow's compaction (size tiers
   per partition) after every run, then queried; then compacted into one segment per partition (peak RSS
   of that compaction) and queried again.

The query: ``--queries`` random signatures, ``--planted`` of them near-copies of lake entries (10% of the
values changed: estimated Jaccard ~0.8), timed as ``LakeIndex.open`` + ``query`` (wall and CPU: the
machine may be shared; its RSS is the growth over the process with the batch loaded), each layout's
answers checked equal to the baseline's. Ratios are to the baseline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import flows.dedup as dedup
from bench.support.meters import peak_rss_mb
from bench.support.paths import REPO
from flows.dedup.index import compact, segment_count, segments_per_partition
from flows.dedup.index.layout import write_index_file
from flows.dedup.index.write import Entries, write_partitioned
from tests.support.legacy_index import legacy_compact, write_format2

LEGACY_SEGMENT = 500_000
"""Entries in a segment of the old flow after compaction (its COMPACT_MAX_ENTRIES)."""


def entries_of_run(run: int, n: int, num_perm: int) -> Entries:
    """Run ``run``'s synthetic entries: random signatures (all unique), 64-character ids, all kept."""
    rng = np.random.default_rng(1000 + run)
    sigs = rng.integers(0, 2**32, size=(n, num_perm), dtype=np.uint32)
    ids = np.array([f"{run:05d}{i:011x}".ljust(64, "0").encode() for i in range(n)], dtype="S64")
    hashes = np.frombuffer(hashlib.sha256(f"run{run}".encode()).digest(), dtype=np.uint64)[:2]
    return Entries(signatures=sigs, doc_ids=ids, clusters=ids.copy(), is_duplicate=np.zeros(n, bool),
                   similarity=np.ones(n, np.float32), sizes=rng.integers(100, 2000, size=n, dtype=np.uint32),
                   hashes=np.tile(hashes, (n, 1)), kinds=np.zeros(n, np.uint8), containment=np.ones(n, np.float32))


def runs_of(lake: int, run_docs: int) -> list[int]:
    return [min(run_docs, lake - start) for start in range(0, lake, run_docs)]


def build_legacy(index_dir: Path, lake: int, run_docs: int) -> dict[str, Any]:
    config = dedup.DedupConfig()
    start = time.perf_counter()
    for run, n in enumerate(runs_of(lake, run_docs)):
        e = entries_of_run(run, n, config.num_perm)
        write_format2(index_dir / "segments" / f"run-{run:04d}", config, doc_ids=[d.decode() for d in e.doc_ids],
                      clusters=[c.decode() for c in e.clusters], signatures=e.signatures,
                      is_duplicate=e.is_duplicate, similarity=e.similarity, sizes=e.sizes, hashes=e.hashes,
                      kinds=e.kinds, containment=e.containment)
        del e
        step = 0
        while legacy_compact(index_dir, config, f"compact-{run:04d}-{step}", LEGACY_SEGMENT) is not None:
            step += 1
    return {"build_s": time.perf_counter() - start, "build_rss_mb": peak_rss_mb(),
            "segments": segment_count(index_dir)}


def build_partitioned(index_dir: Path, partitions: int, lake: int, run_docs: int, start: int = 0) -> dict[str, Any]:
    """Build (or, from ``start`` entries on, grow) a lake's index of ``lake`` synthetic entries, run by run, the
    flow's size-tier compaction after each."""
    config = dedup.DedupConfig(partitions=partitions)
    began = time.perf_counter()
    compacting = 0.0
    for run, n in enumerate(runs_of(lake, run_docs)):
        if run * run_docs < start:
            continue
        staging = index_dir.parent / "_staging" / f"run-{run:04d}"
        if run == 0:
            write_index_file(staging, config)
        write_partitioned(staging, f"run-{run:04d}", config, entries_of_run(run, n, config.num_perm))
        dedup.publish_segment(index_dir, staging, f"run-{run:04d}")
        shutil.rmtree(staging)
        before = time.perf_counter()
        compact(index_dir, config, f"compact-{run:04d}")
        compacting += time.perf_counter() - before
    counts = segments_per_partition(index_dir)
    return {"build_s": time.perf_counter() - began, "tiered_compaction_s": compacting,
            "build_rss_mb": peak_rss_mb(), "segments": sum(counts.values()), "most_per_partition": max(counts.values())}


def compact_fully(index_dir: Path, partitions: int) -> dict[str, Any]:
    config = dedup.DedupConfig(partitions=partitions)
    start = time.perf_counter()
    compact(index_dir, config, "full", everything=True)
    return {"compact_s": time.perf_counter() - start, "compact_rss_mb": peak_rss_mb(),
            "segments": segment_count(index_dir)}


def queries(lake: int, run_docs: int, count: int, planted: float, num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """Random signatures, the first ``planted`` share of them near-copies of entries of up to 4 runs."""
    rng = np.random.default_rng(12345)
    sigs = rng.integers(0, 2**32, size=(count, num_perm), dtype=np.uint32)
    sizes = rng.integers(100, 2000, size=count, dtype=np.uint32)
    runs = runs_of(lake, run_docs)
    chosen = sorted({int(r) for r in np.linspace(0, len(runs) - 1, min(4, len(runs)))})
    copies = int(count * planted)
    for k, run in enumerate(chosen):
        lo, hi = copies * k // len(chosen), copies * (k + 1) // len(chosen)
        source = entries_of_run(run, runs[run], num_perm).signatures
        picked = source[np.sort(rng.choice(len(source), size=hi - lo, replace=False))]
        mask = rng.random(picked.shape) < 0.1
        sigs[lo:hi] = np.where(mask, sigs[lo:hi], picked)
    return sigs, sizes


def query(index_dir: Path, partitions: int, batch: Path) -> dict[str, Any]:
    config = dedup.DedupConfig(partitions=partitions)
    with np.load(batch) as saved:
        sigs, sizes = saved["sigs"], saved["sizes"]
    base_rss = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    index = dedup.LakeIndex.open(index_dir, config)
    near, inside = index.query(sigs, sizes)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    answer = hashlib.sha256(json.dumps([near.query_rows.tolist(), near.doc_ids, near.similarity.tolist(),
                                        inside.query_rows.tolist(), inside.doc_ids]).encode()).hexdigest()[:16]
    return {"query_s": wall, "query_cpu_s": cpu, "query_rss_mb": peak_rss_mb() - base_rss, "found": len(near.doc_ids),
            "answers": answer, "segments_searched": len(index.segments)}


def child(step: str, args: list[str]) -> None:
    index_dir = Path(args[0])
    if step == "query":
        print(json.dumps(query(index_dir, int(args[1]), Path(args[2]))))
        return
    p, lake, run_docs = (int(a) for a in args[1:4])
    if step == "build-legacy":
        out = build_legacy(index_dir, lake, run_docs)
    elif step == "build":
        out = build_partitioned(index_dir, p, lake, run_docs)
    else:
        out = compact_fully(index_dir, p)
    print(json.dumps(out))


def measured(step: str, *args: object) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.scale", "--child", step, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def disk_bytes(index_dir: Path) -> int:
    return sum(f.stat().st_size for f in index_dir.rglob("*") if f.is_file())


def bench_lake(lake: int, partitions: list[int], args: argparse.Namespace, workdir: Path) -> None:
    print(f"\n## a lake of {lake:,} entries, built in runs of {args.run_docs:,}; {args.queries:,} queries "
          f"({args.planted:.0%} planted near-copies)")
    batch = workdir / f"queries-{lake}.npz"
    sigs, sizes = queries(lake, args.run_docs, args.queries, args.planted, dedup.DedupConfig().num_perm)
    np.savez(batch, sigs=sigs, sizes=sizes)
    del sigs, sizes
    index_dir = workdir / "legacy" / "_index"
    built = measured("build-legacy", index_dir, 0, lake, args.run_docs)
    base = measured("query", index_dir, 16, batch)
    _row("format 2 (baseline)", built, base, base, disk_bytes(index_dir) / lake, "old compaction")
    shutil.rmtree(workdir / "legacy")
    for p in partitions:
        index_dir = workdir / f"p{p}" / "_index"
        built = measured("build", index_dir, p, lake, args.run_docs)
        tiered = measured("query", index_dir, p, batch)
        _row(f"P={p}, size tiers", built, tiered, base, disk_bytes(index_dir) / lake, "build incl. tiers")
        full = measured("compact", index_dir, p, lake, args.run_docs)
        after = measured("query", index_dir, p, batch)
        _row(f"P={p}, one per partition", full, after, base, disk_bytes(index_dir) / lake, "full compaction")
        shutil.rmtree(workdir / f"p{p}")


def _row(label: str, built: dict[str, Any], got: dict[str, Any], base: dict[str, Any], per_doc: float,
         what: str) -> None:
    same = "same answers" if got["answers"] == base["answers"] else "ANSWERS DIFFER"
    seconds = built.get("build_s", built.get("compact_s", 0.0))
    rss = built.get("build_rss_mb", built.get("compact_rss_mb", 0.0))
    print(f"  {label:26s} query {got['query_s']:7.2f} s wall, {got['query_cpu_s']:7.2f} s CPU "
          f"(x{got['query_cpu_s'] / base['query_cpu_s']:.2f} CPU vs baseline), peak RSS {got['query_rss_mb']:6.0f} MB, "
          f"{got['segments_searched']:5d} segments; {got['found']:,} matched, {same}; {per_doc:6.0f} bytes/doc; "
          f"{what}: {seconds:6.0f} s, peak RSS {rss:5.0f} MB" + (f", at most {built['most_per_partition']} "
                                                                  f"segments in a partition"
                                                                  if "most_per_partition" in built else ""))
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lakes", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--partitions", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--planted", type=float, default=0.1)
    parser.add_argument("--run-docs", type=int, default=250_000)
    parser.add_argument("--workdir", type=Path, default=None, help="where the lakes are built (default: a temp dir)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1:])
        return
    print(f"# index scale bench; DedupConfig: {dedup.DedupConfig().model_dump()}")
    with tempfile.TemporaryDirectory(prefix="scale-bench-", dir=args.workdir) as tmp:
        for lake in args.lakes:
            bench_lake(lake, args.partitions, args, Path(tmp))


if __name__ == "__main__":
    main()

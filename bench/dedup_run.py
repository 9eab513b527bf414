"""A run's dedup on synthetic signatures (no extraction): memory and time of each stage, against one process.

    python -m bench.dedup_run --docs 100000 1000000 --partitions 16

For each run size N: a staged run of N documents (random signatures, 5% light near-copies of others, 2% exact
copies, shards of ``--shard-docs``) is deduplicated twice, each step in a child process so its peak RSS is its
own: (a) the single-process resolver (``resolve`` over the whole run, then the run's index segment: what the
flow did before dedup became stages), (b) the stages: every shard's ``prepare`` (one child, the peak is the
largest shard's), every partition's ``link`` (one child, the peak is the largest partition's), and the flow's
``decide`` with the index segment. Prints wall and CPU seconds and peak RSS per step, and the ratio of the
flow's peak to the single process's.
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.support.meters import peak_rss_mb
from flows.config import StorageConfig
from flows.dedup import DedupBatch, DedupConfig, LakeIndex, resolve
from flows.dedup.stages import signature_matrix
from flows.lake.layout import RunPaths, use_system_memory_pool
from flows.run import decide_stage, link_partition, prepare_dedup


def synthetic_run(paths: RunPaths, docs: int, shard_docs: int, config: DedupConfig, seed: int = 1) -> list[int]:
    """Stage ``docs`` synthetic documents in shards: random signatures with planted near and exact copies."""
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
        found = [link_partition(paths, part, numbers, config) for part in range(config.partitions)]
        (Path(work) / "links.pickle").write_bytes(pickle.dumps(found))
        result = sum(len(f.near) for f in found)
    elif step == "decide":
        found = pickle.loads((Path(work) / "links.pickle").read_bytes())
        result = decide_stage(paths, numbers, found, config, index_dir)
    print(json.dumps({"step": step, "wall_s": round(time.perf_counter() - wall, 2),
                      "cpu_s": round(time.process_time() - cpu, 2), "peak_rss_mb": round(peak_rss_mb()),
                      "result": result}))


def _run_child(step: str, work: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.dedup_run", "--child", step, str(work)], check=True,
                         capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--shard-docs", type=int, default=10_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    for docs in args.docs:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            paths = RunPaths(str(work / "lake"), "bench-run", "2026-01-01")
            numbers = synthetic_run(paths, docs, args.shard_docs, DedupConfig(partitions=args.partitions))
            (work / "state.json").write_text(json.dumps({"lake": str(work / "lake"), "numbers": numbers,
                                                         "partitions": args.partitions}))
            rows = [_run_child(step, work) for step in ("single", "prepare", "link", "decide")]
        print(f"\nN = {docs:,} documents, P = {args.partitions}, shards of {args.shard_docs:,}")
        for row in rows:
            print(f"  {row['step']:<8} wall {row['wall_s']:>7.1f} s  cpu {row['cpu_s']:>7.1f} s  "
                  f"peak RSS {row['peak_rss_mb']:>6} MB  ({row['result']})")
        single, decide = rows[0]["peak_rss_mb"], rows[3]["peak_rss_mb"]
        print(f"  the flow's peak (decide) / one process's peak (single): {decide / single:.2f}")


if __name__ == "__main__":
    main()

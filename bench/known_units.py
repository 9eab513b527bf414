"""The known-ids step of a run, before and after the known-units store, on a synthetic lake; and what a worker reads
to look a shard's units up.

    .venv/bin/python -m bench.known_units [--docs 20000] [--runs 20] [--shard-units 1000] [--later-runs 30]
                                          [--out bench/out/known-units]

The lake holds ``--docs`` documents in ``--runs`` run files (the documents schema, ~1 KB of text each) and a reject
for every 20th. Each step runs in a child process of its own, which reports its wall seconds and its peak RSS
(with the RSS it had before the step, imports done):

- ``scan``: what every run did before the store: scan both tables for their ids, save the sorted keys (8 bytes a
  unit) for the workers, which each loaded (a bucket lake's workers downloaded) the whole file;
- ``build``: the one-time build of the store for a lake written before it (the same scan, then the files);
- ``step``: what every run does now (``flows.run.prepare_known_units`` on a lake with the store).

Then a shard of ``--shard-units`` units (half in the lake) is looked up as a bucket lake's worker does (ranged
reads, through the local filesystem): the bytes read, against the bytes of the whole key list. Last, ``--later-runs``
more runs of the same size are committed to the store and merged as the flow does (the merge's seconds after each
commit), and the shard is looked up again in the store of tiered files they leave.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
WORDS = str.split("the river runs past the old mill and children walk along the bank every morning before school")


def synthesize(lake: Path, docs: int, runs: int) -> None:
    """A lake as runs write it: one documents and one rejects file per run."""
    from flows.document import Reject
    from flows.lake import documents_schema, rejects_table, write_parquet_atomic
    from flows.quality import SIGNAL_NAMES

    schema = documents_schema(SIGNAL_NAMES)
    per_run = -(-docs // runs)
    rng = np.random.default_rng(22)
    for run in range(runs):
        ids = [f"{run:04d}{n:028x}" for n in range(min(per_run, docs - run * per_run))]
        text = [" ".join(rng.choice(WORDS, 180)) for _ in range(min(len(ids), 500))]
        columns: dict[str, Any] = {name: pa.nulls(len(ids), schema.field(name).type) for name in schema.names}
        columns |= {"doc_id": pa.array(ids), "text": pa.array([text[n % len(text)] for n in range(len(ids))]),
                    "run_id": pa.array([f"run{run}"] * len(ids))}
        date = f"ingest_date=2026-01-{run % 28 + 1:02d}"
        write_parquet_atomic(pa.table(columns, schema=schema), lake / "documents" / date / f"run-run{run}.parquet")
        rejects = [Reject(f"r{unit}", f"{unit}.txt", "read", "empty", "") for unit in ids[::20]]
        write_parquet_atomic(rejects_table(rejects, f"run{run}"), lake / "rejects" / date / f"run-run{run}.parquet")


def memory_mb(field: str) -> float:
    """This process's ``VmRSS`` or peak ``VmHWM`` (Linux; unlike ``ru_maxrss``, not inherited from the parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(mode: str, lake: str) -> dict[str, Any]:
    """One step, measured in this process."""
    from flows import lake as lakefs
    from flows import run

    store = lakefs.as_store(lake)
    before = memory_mb("VmRSS")
    start = time.perf_counter()
    extra: dict[str, Any]
    if mode == "scan":
        keys = lakefs.known_unit_ids(store)
        np.save(Path(lake) / "_known_ids.npy", keys)
        extra = {"keys": int(keys.size), "file_bytes": (Path(lake) / "_known_ids.npy").stat().st_size}
    elif mode == "build":
        extra = {"keys": lakefs.ensure_known_units(store)}
    elif mode == "step":
        paths = lakefs.RunPaths(store, "bench-step", "2026-02-01")
        extra = {"built": run.prepare_known_units(paths, [])}
        shutil.rmtree(paths.staging)
    else:
        extra = later_runs(store, *(int(n) for n in mode.split(":")[1:]))
    seconds = time.perf_counter() - start
    return {"mode": mode, "seconds": round(seconds, 3), "rss_before_mb": before, "peak_rss_mb": memory_mb("VmHWM"),
            **extra}


def later_runs(store: Any, runs: int, units: int) -> dict[str, Any]:
    """``runs`` more runs of ``units`` new units each, committed then merged as the flow does; the merge times."""
    from flows import lake as lakefs

    merges = []
    for number in range(runs):
        paths = lakefs.RunPaths(store, f"later{number:04d}", "2026-03-01")
        moves = lakefs.stage_run_units(paths, [f"later{number:04d}-{n}" for n in range(units)])
        paths.manifest.write_text("{}")
        lakefs.commit(paths, moves)
        start = time.perf_counter()
        lakefs.merge_known_units(store)
        merges.append(time.perf_counter() - start)
    manifest = lakefs.KnownUnits.open(store).manifest
    per_partition = [sum(f.partition == p for f in manifest.files) for p in range(manifest.partitions)]
    return {"later_runs": runs, "merge_seconds_max": round(max(merges), 3),
            "merge_seconds_total": round(sum(merges), 3),
            "files_per_partition": f"{min(per_partition)}-{max(per_partition)}"}


def measured(mode: str, lake: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.known_units", "--child", mode, str(lake)], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def lookups(lake: Path, units: int) -> dict[str, Any]:
    """A shard's lookups as a bucket lake's worker makes them (ranged reads)."""
    from flows import lake as lakefs

    store = lakefs.as_store(str(lake))
    known = lakefs.KnownUnits.open(store, ranged=True)
    opened = known.bytes_read
    held = [f"{0:04d}{n:028x}" for n in range(units // 2)]
    start = time.perf_counter()
    found = known.contains(held + [f"new-{n}" for n in range(units - len(held))])
    seconds = time.perf_counter() - start
    assert found.tolist() == [True] * len(held) + [False] * (units - len(held))
    manifest = known.manifest
    return {"shard_units": units, "fence_bytes": opened, "lookup_bytes": known.bytes_read - opened,
            "lookup_seconds": round(seconds, 3), "files": len(manifest.files),
            "store_bytes": sum(8 * f.keys for f in manifest.files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--shard-units", type=int, default=1_000)
    parser.add_argument("--later-runs", type=int, default=30)
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "known-units"))
    parser.add_argument("--child", nargs=2, metavar=("MODE", "LAKE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    lake = Path(args.out) / f"lake-{args.docs}"
    shutil.rmtree(lake, ignore_errors=True)
    synthesize(lake, args.docs, args.runs)
    results = [measured("scan", lake), measured("build", lake), measured("step", lake)]
    results.append(lookups(lake, args.shard_units))
    if args.later_runs:  # the store as the flow leaves it after more runs: tiers of merged files
        results += [measured(f"later:{args.later_runs}:{args.docs // args.runs}", lake),
                    lookups(lake, args.shard_units)]
    for row in results:
        print(json.dumps(row))
    (Path(args.out) / f"results-{args.docs}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

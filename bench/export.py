"""Time, peak RSS and shard sizes of ``siftlake export`` on generated lakes of 20,000 and 200,000 documents.

    .venv/bin/python -m bench.export [--sizes 20000 200000] [--shard-bytes 2MB] [--out bench/out/export]

Each lake has one run's documents in the lake's schema (``documents_schema(SIGNAL_NAMES)``): texts of
three to six paragraphs drawn from 20,000 generated ones (about 2.4 KB each), 10% duplicates, three
languages, uniform quality scores. Each export runs in a process of its own (peak RSS from ``wait4``):
the predicate ``quality_score >= 0.5``, in the lake's order and shuffled, as Parquet and as jsonl.zst.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flows import lake as lakefs
from flows.export import parse_size
from flows.quality import SIGNAL_NAMES

REPO = Path(__file__).resolve().parent.parent
WORDS = [f"w{i:x}" for i in range(3000)] + ["the", "and", "of", "to", "in", "der", "die", "und", "le", "la", "et"]
RUN_ID = "20261203T000000Z-bench000"


def paragraphs(rng: np.random.Generator, count: int) -> list[str]:
    words = np.array(WORDS)
    return [" ".join(words[rng.integers(0, len(words), rng.integers(60, 140))]).capitalize() + "."
            for _ in range(count)]


def make_lake(root: Path, documents: int, seed: int = 5) -> Path:
    """A lake of ``documents`` rows in files of 20,000 rows."""
    if (root / lakefs.RUNS / f"{RUN_ID}.json").exists():
        return root
    rng = np.random.default_rng(seed)
    pool = paragraphs(rng, 20_000)
    schema = lakefs.documents_schema(SIGNAL_NAMES)
    folder = root / lakefs.DOCUMENTS / "ingest_date=2026-12-03"
    folder.mkdir(parents=True, exist_ok=True)
    for part, start in enumerate(range(0, documents, 20_000)):
        n = min(20_000, documents - start)
        pq.write_table(_table(rng, pool, start, n, schema), folder / f"run-{RUN_ID}-{part:03d}.parquet",
                       compression="zstd")
    (root / lakefs.RUNS).mkdir(exist_ok=True)
    (root / lakefs.RUNS / f"{RUN_ID}.json").write_text(json.dumps({"run_id": RUN_ID, "config": {"source": "bench"}}))
    return root


def _table(rng: np.random.Generator, pool: list[str], start: int, n: int, schema: pa.Schema) -> pa.Table:
    texts = ["\n\n".join(pool[i] for i in rng.integers(0, len(pool), rng.integers(3, 7))) for _ in range(n)]
    ids = [f"{i:032x}" for i in rng.integers(0, 2**62, n)]
    columns = {"doc_id": ids, "source_uri": [f"crawl.jsonl#L{start + i + 1}" for i in range(n)],
               "url": [f"https://example.org/{start + i}" for i in range(n)],
               "title": [f"Page {start + i}" for i in range(n)], "text": texts,
               "lang": rng.choice(["en", "de", "fr"], n).tolist(), "content_hash": ids, "dup_cluster": ids,
               "is_duplicate": (rng.random(n) < 0.1).tolist(), "quality_score": rng.random(n).tolist(),
               "input_kind": ["text"] * n, "n_chars": [len(t) for t in texts], "run_id": [RUN_ID] * n}
    arrays = [pa.array(columns[f.name], f.type) if f.name in columns else
              pa.nulls(n, f.type) if pa.types.is_string(f.type) else pa.array(rng.random(n), f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def export(lake: Path, out: Path, fmt: str, shard_bytes: str, shuffle: bool) -> dict[str, object]:
    command = [sys.executable, "-m", "flows.cli", "export", "--lake", str(lake), str(out), "--format", fmt,
               "--where", "quality_score >= 0.5", "--shard-bytes", shard_bytes, "--replace", "--json"]
    command += ["--shuffle-seed", "1"] if shuffle else []
    started = time.monotonic()
    process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    assert status == 0, f"export failed: {command}"
    manifest = json.loads((out / "manifest.json").read_text())
    sizes = [s["bytes"] for s in manifest["shards"]]
    target = parse_size(shard_bytes)
    full = sizes[:-1] or sizes
    return {"documents": manifest["totals"]["documents"], "seconds": round(seconds, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "shards": len(sizes),
            "shard_mb_min_mean_max": [round(x / 1e6, 2) for x in (min(full), statistics.mean(full), max(full))],
            "worst_deviation": round(max(abs(s - target) / target for s in full), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--shard-bytes", default="2MB")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "export")
    args = parser.parse_args()
    for size in args.sizes:
        lake = make_lake(args.out / f"lake-{size}", size)
        for fmt in ("parquet", "jsonl.zst"):
            for shuffle in (False, True):
                result = export(lake, args.out / f"out-{size}", fmt, args.shard_bytes, shuffle)
                print(json.dumps({"lake": size, "format": fmt, "shuffle": shuffle, **result}), flush=True)


if __name__ == "__main__":
    main()

"""Read-stage throughput: every input kind from a local folder, and (``--s3``) the same tree from S3.

    python -m bench.read                 # local: html files, .html.gz, jsonl, jsonl.gz, split jsonl, warc.gz, parquet
    python -m bench.read --s3            # plus each kind read from a local S3 server (moto), as a ratio to local
    python -m bench.read --repeat 3      # best of 3 per kind

The tree is built from the gold corpora's pages (about 1,800 pages, 87 MB on disk): each kind holds the
same pages, so the rows compare the reading path, not the content. Time is discover + plan_shards +
read_shard per shard (what the flow's read stage does), best of ``--repeat`` runs; "cpu s" is this
process's CPU time in that run (the S3 server's is not in it). The S3 server is moto on 127.0.0.1 (one
Python process, ~10-20 ms a request on 2 cores): its wall times are the server's more than the client's;
compare the client's CPU time with the local run's.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.support.meters import moto_server
from bench.support.paths import corpora_dir
from flows import read


def pages() -> list[tuple[str, bytes]]:
    corpora = corpora_dir()
    found = sorted(p for p in corpora.glob("*/html/*") if p.is_file())
    assert found, f"no pages under {corpora}/*/html (set SIFTLAKE_CORPORA)"
    return [(p.relative_to(corpora).as_posix(), p.read_bytes()) for p in found]


def build_tree(root: Path) -> dict[str, Path]:
    """One folder (or file) per kind, each holding every page once."""
    all_pages = pages()
    (root / "html").mkdir()
    for rel, data in all_pages:
        target = root / "html" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (root / "html_gz").mkdir()
    for rel, data in all_pages:
        name = rel if rel.endswith(".gz") else rel + ".gz"
        target = root / "html_gz" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data if rel.endswith(".gz") else gzip.compress(data, 6))
    rows = [{"id": rel, "url": f"https://example.org/{rel}",
             "html": (gzip.decompress(data) if rel.endswith(".gz") else data).decode("utf-8", "replace")}
            for rel, data in all_pages]
    jsonl = "".join(json.dumps(row) + "\n" for row in rows).encode()
    (root / "jsonl").mkdir()
    (root / "jsonl" / "pages.jsonl").write_bytes(jsonl)
    (root / "jsonl_gz").mkdir()
    (root / "jsonl_gz" / "pages.jsonl.gz").write_bytes(gzip.compress(jsonl, 6))
    (root / "warc").mkdir()
    for copy in range(20):
        for warc in sorted((corpora_dir() / "warc_samples_dolma").glob("*.warc.gz")):
            shutil.copyfile(warc, root / "warc" / f"{copy:02d}-{warc.name}")
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "parquet").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), root / "parquet" / "pages.parquet", row_group_size=256)
    return {kind: root / kind for kind in ("html", "html_gz", "jsonl", "jsonl_gz", "warc", "parquet")}


def read_source(source: str, config: Any, options: dict[str, Any] | None) -> tuple[int, int]:
    found = read.discover(source, options)
    docs = rejects = 0
    for shard in read.plan_shards(found.files, config, options):
        shard_docs, shard_rejects = read.read_shard(shard, config, options)
        docs += len(shard_docs)
        rejects += len(shard_rejects)
    return docs, rejects


def best_of(repeat: int, run: Callable[[], tuple[int, int]]) -> tuple[float, float, tuple[int, int]]:
    """Best wall time, and this process's CPU time (all threads) in that run, of ``repeat`` runs."""
    times, result = [], (0, 0)
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        result = run()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    wall, cpu = min(times)
    return wall, cpu, result


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def upload(root: Path, bucket: str) -> None:
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        client.upload_fileobj(io.BytesIO(path.read_bytes()), bucket, path.relative_to(root).as_posix())


def measure_kind(kind: str, path: Path, root: Path, config: Any, repeat: int, s3: bool) -> str:
    """One row of the table: the kind read locally and (``s3``) from the S3 server."""
    local_s, local_cpu, (docs, rejects) = best_of(repeat, lambda: read_source(str(path), config, None))
    megabytes = tree_bytes(path) / 1e6
    line = (f"{kind:<12} {megabytes:6.1f} {docs:5d} {rejects:4d} {local_s:8.2f} {local_cpu:6.2f} "
            f"{megabytes / local_s:6.1f}")
    if s3:
        uri = f"s3://bench/{path.relative_to(root).as_posix()}"
        s3_s, s3_cpu, remote = best_of(repeat, lambda: read_source(uri, config, {}))
        assert remote == (docs, rejects), (kind, remote, (docs, rejects))
        line += f" {s3_s:7.2f} {s3_cpu:6.2f} {s3_s / local_s:8.2f}"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--s3", action="store_true", help="also read every kind from a local S3 server")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--kinds", default="", help="comma-separated subset of kinds")
    args = parser.parse_args()
    config = read.ReadConfig()
    split = read.ReadConfig(shard_bytes=8 << 20)
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="siftlake-bench-read-")))
        kinds = build_tree(root)
        kinds["jsonl_split"] = kinds["jsonl"]
        if args.kinds:
            kinds = {k: v for k, v in kinds.items() if k in args.kinds.split(",")}
        if args.s3:
            os.environ.update(stack.enter_context(moto_server()))
            upload(root, "bench")
        print(f"code: {read.__file__}")
        print(f"{'kind':<12} {'MB':>6} {'docs':>5} {'rej':>4} {'local s':>8} {'cpu s':>6} {'MB/s':>6}"
              + (f" {'s3 s':>7} {'cpu s':>6} {'s3/local':>8}" if args.s3 else ""))
        for kind, path in kinds.items():
            cfg = split if kind == "jsonl_split" else config
            print(measure_kind(kind, path, root, cfg, args.repeat, args.s3), flush=True)


if __name__ == "__main__":
    main()

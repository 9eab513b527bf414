"""Read-stage throughput: every input kind from a local folder, and (``--s3``) the same tree from S3.

    python bench/read.py                 # local: html files, .html.gz, jsonl, jsonl.gz, split jsonl, warc.gz, parquet
    python bench/read.py --s3            # plus each kind read from a local S3 server (moto), as a ratio to local
    python bench/read.py --repeat 3      # best of 3 per kind

The tree is built from the gold corpora's pages (about 1,800 pages, 87 MB on disk): each kind holds the
same pages, so the rows compare the reading path, not the content. Time is discover + plan_shards +
read_shard per shard (what the flow's read stage does), best of ``--repeat`` runs; "cpu s" is this
process's CPU time in that run (the S3 server's is not in it). The S3 server is moto on 127.0.0.1 (one
Python process, ~10-20 ms a request on 2 cores): its wall times are the server's more than the client's;
compare the client's CPU time with the local run's.
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.environ.get("SIFTLAKE_BENCH_CODE", str(REPO)))  # another checkout's code, for before/after

from flows import read  # noqa: E402

CORPORA = Path(os.environ.get("SIFTLAKE_CORPORA", REPO.parent / "shared" / "corpora"))
HAS_OPTIONS = "options" in inspect.signature(read.read_shard).parameters


def pages() -> list[tuple[str, bytes]]:
    found = sorted(p for p in CORPORA.glob("*/html/*") if p.is_file())
    assert found, f"no pages under {CORPORA}/*/html (set SIFTLAKE_CORPORA)"
    return [(p.relative_to(CORPORA).as_posix(), p.read_bytes()) for p in found]


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
        for warc in sorted((CORPORA / "warc_samples_dolma").glob("*.warc.gz")):
            shutil.copyfile(warc, root / "warc" / f"{copy:02d}-{warc.name}")
    kinds = {kind: root / kind for kind in ("html", "html_gz", "jsonl", "jsonl_gz", "warc")}
    if hasattr(read, "_read_parquet"):  # the code before Parquet inputs has no such kind
        import pyarrow as pa
        import pyarrow.parquet as pq

        (root / "parquet").mkdir()
        pq.write_table(pa.Table.from_pylist(rows), root / "parquet" / "pages.parquet", row_group_size=256)
        kinds["parquet"] = root / "parquet"
    return kinds


def read_source(source: str, config: Any, options: dict[str, Any] | None) -> tuple[int, int]:
    extra: dict[str, Any] = {"options": options} if HAS_OPTIONS else {}
    found = read.discover(source, **extra)
    docs = rejects = 0
    for shard in read.plan_shards(found.files, config, **extra):
        shard_docs, shard_rejects = read.read_shard(shard, config, **extra)
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


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    moto = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
    return process, endpoint


def upload(root: Path, bucket: str) -> None:
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        client.upload_fileobj(io.BytesIO(path.read_bytes()), bucket, path.relative_to(root).as_posix())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--s3", action="store_true", help="also read every kind from a local S3 server")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--kinds", default="", help="comma-separated subset of kinds")
    args = parser.parse_args()
    config = read.ReadConfig()
    split = read.ReadConfig(shard_bytes=8 << 20)
    moto = None
    with tempfile.TemporaryDirectory(prefix="siftlake-bench-read-") as folder:
        root = Path(folder)
        kinds = build_tree(root)
        kinds["jsonl_split"] = kinds["jsonl"]
        if args.kinds:
            kinds = {k: v for k, v in kinds.items() if k in args.kinds.split(",")}
        if args.s3:
            moto, _ = start_moto()
            upload(root, "bench")
        print(f"code: {read.__file__}")
        print(f"{'kind':<12} {'MB':>6} {'docs':>5} {'rej':>4} {'local s':>8} {'cpu s':>6} {'MB/s':>6}"
              + (f" {'s3 s':>7} {'cpu s':>6} {'s3/local':>8}" if args.s3 else ""))
        try:
            for kind, path in kinds.items():
                cfg = split if kind == "jsonl_split" else config
                local_s, local_cpu, (docs, rejects) = best_of(
                    args.repeat, lambda p=path, c=cfg: read_source(str(p), c, None))
                megabytes = tree_bytes(path) / 1e6
                line = (f"{kind:<12} {megabytes:6.1f} {docs:5d} {rejects:4d} {local_s:8.2f} {local_cpu:6.2f} "
                        f"{megabytes / local_s:6.1f}")
                if args.s3:
                    uri = f"s3://bench/{path.relative_to(root).as_posix()}"
                    s3_s, s3_cpu, remote = best_of(args.repeat, lambda u=uri, c=cfg: read_source(u, c, {}))
                    assert remote == (docs, rejects), (kind, remote, (docs, rejects))
                    line += f" {s3_s:7.2f} {s3_cpu:6.2f} {s3_s / local_s:8.2f}"
                print(line, flush=True)
        finally:
            if moto is not None:
                moto.terminate()
                moto.wait(10)


if __name__ == "__main__":
    main()

"""End-to-end throughput and memory: siftlake vs datatrove vs extraction alone, on one corpus.

    python -m bench.e2e                         # 20,000 documents, one round of each contestant
    python -m bench.e2e --docs 2000 --rounds 2  # quick iteration
    python -m bench.e2e --docs 100000 --only siftlake   # the memory check at 5x the size
    python -m bench.e2e --docs 2000 --only siftlake siftlake-s3   # object storage: S3 into S3 vs local

Builds (once, cached under bench/out/e2e/) a JSONL corpus from every page of ../shared/corpora/*/html
with exact and near duplicates (bench/e2e/corpus.py), then times, alternating round by round:
(a) ``siftlake ingest CORPUS --lake LAKE --json`` (the CLI, the whole Prefect flow, its own temporary API);
(b) datatrove 0.10.1 doing the same work with its local executor (bench/e2e/datatrove_baseline.py), in its own
    virtual environment bench/out/datatrove-venv (created here with pip when missing);
(c) trafilatura extraction alone with siftlake's extract settings (bench/e2e/extract_alone.py);
(d) ``siftlake-s3``: the same CLI run with the corpus in a bucket and the lake in a bucket, on an S3 server
    (moto) on 127.0.0.1 started for the run; the server's own CPU competes with the run on this machine,
    which real S3 would not, and its memory is not counted (it is not part of siftlake's process tree).
All run on ``--workers`` processes (2 by default). Peak RSS is that of each contestant's whole process
tree, polled with psutil. CPU seconds are those of the whole tree (and, for siftlake, of the background
Prefect API the CLI shares between runs, started untimed before the first round as on a warm machine);
cores busy = CPU seconds / wall seconds shows idle cores on any machine. Ratios are taken between runs
of the same round, so load from elsewhere on the machine hits both sides. Siftlake's per-stage seconds
come from the run manifest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psutil

from bench.e2e.corpus import build
from bench.support.meters import Result, moto_server, run_measured
from bench.support.paths import REPO

E2E = Path(__file__).resolve().parent
BENCH = E2E.parent
OUT = BENCH / "out" / "e2e"
DT_VENV = BENCH / "out" / "datatrove-venv"
DT_PACKAGES = ["datatrove[processing]==0.10.1", "orjson", "spacy", "pyarrow", "lxml_html_clean"]
CONTESTANTS = ("siftlake", "datatrove", "extract", "siftlake-s3")


def ensure_datatrove() -> Path:
    python = DT_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {DT_VENV} with {' '.join(DT_PACKAGES)} ...", flush=True)
        subprocess.run(["python3", "-m", "venv", str(DT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *DT_PACKAGES], check=True)
    return python


def siftlake_env(**extra: str) -> dict[str, str]:
    """The environment of a siftlake contestant: its own Prefect home, no Prefect server configured (so the
    CLI's background API serves it, as it would a user's second run)."""
    env = dict(os.environ, PREFECT_HOME=str(OUT / "prefect-home"), **extra)
    env.pop("PREFECT_API_URL", None)
    return env


def siftlake_cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "siftlake"), *args]


@contextlib.contextmanager
def background_api(env: dict[str, str]) -> Iterator[None]:
    """Start the CLI's background Prefect API (untimed, as on a warm machine); stop it at the end."""
    subprocess.run(siftlake_cli("server", "start"), env=env, cwd=REPO, check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(siftlake_cli("server", "stop"), env=env, cwd=REPO, check=False, capture_output=True)


def server_cpu(env: dict[str, str]) -> float:
    """CPU seconds used so far by the background API that runs with ``env`` use (0 when none runs)."""
    from flows import local_api

    total = 0.0
    for api in local_api.running(Path(env["PREFECT_HOME"])):
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(api.pid).cpu_times()
            total += times.user + times.system
    return total


def run_siftlake(corpus: Path, workers: int, tag: str) -> Result:
    lake = OUT / f"lake-{tag}"
    shutil.rmtree(lake, ignore_errors=True)
    config = OUT / "siftlake-config.json"
    config.write_text(json.dumps({"runner": {"workers": workers}}))
    env = siftlake_env()
    server_before = server_cpu(env)
    command = siftlake_cli("ingest", str(corpus), "--lake", str(lake), "--config", str(config), "--json")
    result = run_measured(command, OUT, env)
    result.cpu_seconds += server_cpu(env) - server_before
    manifest = json.loads(next((lake / "_runs").glob("*.json")).read_text())
    flow_s = (datetime.fromisoformat(manifest["finished_at"]) - datetime.fromisoformat(manifest["started_at"]))
    work_s = sum(manifest["seconds"].values()) / workers
    result.detail = {"counts": json.loads(result.output.strip().splitlines()[-1]), "seconds": manifest["seconds"],
                     "flow_s": round(flow_s.total_seconds(), 1), "stage_work_s_per_worker": round(work_s, 1),
                     "not_stage_work_pct": round(100 * (1 - work_s / result.seconds), 1)}
    shutil.rmtree(lake, ignore_errors=True)
    return result


def run_siftlake_s3(corpus: Path, workers: int, tag: str) -> Result:
    import boto3

    with moto_server() as s3_env:
        client = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], aws_access_key_id="bench",
                              aws_secret_access_key="bench", region_name="us-east-1")
        for bucket in ("bench-raw", "bench-lake"):
            client.create_bucket(Bucket=bucket)
        for path in sorted(corpus.glob("*.jsonl")):
            client.upload_file(str(path), "bench-raw", f"corpus/{path.name}")
        config = OUT / "siftlake-config.json"
        config.write_text(json.dumps({"runner": {"workers": workers}}))
        cache = OUT / f"s3-cache-{tag}"
        shutil.rmtree(cache, ignore_errors=True)
        env = siftlake_env(SIFTLAKE_CACHE=str(cache), SIFTLAKE_SCRATCH=str(OUT / f"s3-scratch-{tag}"), **s3_env)
        server_before = server_cpu(env)
        result = run_measured(siftlake_cli("ingest", "s3://bench-raw/corpus", "--lake", "s3://bench-lake/lake",
                                           "--config", str(config), "--json"), OUT, env)
        result.cpu_seconds += server_cpu(env) - server_before
        cache_bytes = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
        result.detail = {"counts": json.loads(result.output.strip().splitlines()[-1]),
                         "index_cache_MiB": round(cache_bytes / 2**20, 1)}
        shutil.rmtree(cache, ignore_errors=True)
    return result


def run_datatrove(corpus: Path, workers: int, tag: str) -> Result:
    python = ensure_datatrove()
    work = OUT / f"datatrove-{tag}"
    result = run_measured([str(python), str(E2E / "datatrove_baseline.py"), str(corpus), str(work), str(workers)], OUT)
    result.detail = json.loads(result.output.strip().splitlines()[-1])
    shutil.rmtree(work, ignore_errors=True)
    return result


def run_extract(corpus: Path, workers: int, tag: str) -> Result:
    result = run_measured([sys.executable, "-m", "bench.e2e.extract_alone", str(corpus), str(workers)], OUT)
    result.detail = json.loads(result.output.strip().splitlines()[-1])
    return result


RUNNERS = {"siftlake": run_siftlake, "datatrove": run_datatrove, "extract": run_extract,
           "siftlake-s3": run_siftlake_s3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=CONTESTANTS, default=list(CONTESTANTS[:3]))
    args = parser.parse_args()

    corpus = build(OUT / f"corpus-{args.docs}", args.docs)
    size = sum(p.stat().st_size for p in corpus.glob("*.jsonl"))
    print(f"corpus: {args.docs} documents, {size / 1e6:.0f} MB of JSONL in {corpus}; workers: {args.workers}",
          flush=True)
    results: dict[str, list[Result]] = {name: [] for name in args.only}
    with background_api(siftlake_env()):
        run_rounds(corpus, args, results)
    report(results, args.docs, args.workers)


def run_rounds(corpus: Path, args: argparse.Namespace, results: dict[str, list[Result]]) -> None:
    for round_no in range(args.rounds):
        order = args.only[round_no % len(args.only):] + args.only[:round_no % len(args.only)]
        for name in order:
            result = RUNNERS[name](corpus, args.workers, f"{round_no}")
            results[name].append(result)
            print(f"round {round_no + 1} {name:11s} {result.seconds:7.1f} s  {args.docs / result.seconds:6.1f} docs/s  "
                  f"{result.cpu_seconds:6.1f} CPU-s  cores busy {result.cores_busy():4.2f}  "
                  f"peak RSS {result.peak_rss / 2**20:7.0f} MiB  PSS {result.peak_pss / 2**20:5.0f} MiB  "
                  f"{json.dumps(result.detail)}", flush=True)


def report(results: dict[str, list[Result]], docs: int, workers: int) -> None:
    print("\nsummary (median over rounds)")
    rate = {name: statistics.median(docs / r.seconds for r in rs) for name, rs in results.items()}
    for name, rs in results.items():
        wall = statistics.median(r.seconds for r in rs)
        cpu = statistics.median(r.cpu_seconds for r in rs)
        busy = statistics.median(r.cores_busy() for r in rs)
        print(f"  {name:11s} {rate[name]:7.1f} docs/s  wall {wall:7.1f} s  CPU {cpu:7.1f} s  "
              f"cores busy {busy:4.2f} of {workers}  peak RSS {max(r.peak_rss for r in rs) / 2**20:7.0f} MiB")
    for other in ("datatrove", "extract"):
        if "siftlake" in results and other in results:
            ratios = [o.seconds / s.seconds for s, o in zip(results["siftlake"], results[other], strict=True)]
            print(f"  siftlake/{other} docs/s ratio: {statistics.median(ratios):.2f} "
                  f"(per round: {', '.join(f'{x:.2f}' for x in ratios)})")
    if "siftlake" in results and "extract" in results:
        times = [s.seconds / e.seconds for s, e in zip(results["siftlake"], results["extract"], strict=True)]
        print(f"  siftlake time / extraction-alone time: {statistics.median(times):.3f} (target <= 1.2)")
    if "siftlake" in results and "siftlake-s3" in results:
        pairs = list(zip(results["siftlake"], results["siftlake-s3"], strict=True))
        times = [s3.seconds / local.seconds for local, s3 in pairs]
        rss = [(s3.peak_rss - local.peak_rss) / 2**20 for local, s3 in pairs]
        pss = [(s3.peak_pss - local.peak_pss) / 2**20 for local, s3 in pairs]
        print(f"  siftlake S3->S3 time / local->local time: {statistics.median(times):.3f} (target <= 1.2); "
              f"peak RSS S3 - local: {statistics.median(rss):+.0f} MiB, peak PSS {statistics.median(pss):+.0f} MiB "
              "(index cache "
              f"{results['siftlake-s3'][-1].detail.get('index_cache_MiB')} MiB)")
    if "siftlake" in results:
        last = results["siftlake"][-1].detail
        print(f"  siftlake stage seconds (last run, summed over workers): {json.dumps(last.get('seconds', {}))}")
        print(f"  siftlake wall {results['siftlake'][-1].seconds:.1f} s, of it the flow {last.get('flow_s')} s; "
              f"stage work per worker {last.get('stage_work_s_per_worker')} s; everything else "
              f"(Prefect start-up and tasks, dedup, write, idle cores) {last.get('not_stage_work_pct')}% of the wall")


if __name__ == "__main__":
    main()

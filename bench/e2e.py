"""End-to-end throughput and memory: siftlake vs datatrove vs extraction alone, on one corpus.

    python bench/e2e.py                         # 20,000 documents, one round of each contestant
    python bench/e2e.py --docs 2000 --rounds 2  # quick iteration
    python bench/e2e.py --docs 100000 --only siftlake   # the memory check at 5x the size
    python bench/e2e.py --docs 2000 --only siftlake siftlake-s3   # object storage: S3 into S3 vs local

Builds (once, cached under bench/out/e2e/) a JSONL corpus from every page of ../shared/corpora/*/html
with exact and near duplicates (bench/_e2e_corpus.py), then times, alternating round by round:
(a) ``siftlake ingest CORPUS --lake LAKE --json`` (the CLI, the whole Prefect flow, its own temporary API);
(b) datatrove 0.10.1 doing the same work with its local executor (bench/_e2e_datatrove.py), in its own
    virtual environment bench/out/datatrove-venv (created here with pip when missing);
(c) trafilatura extraction alone with siftlake's extract settings (bench/_e2e_extract.py);
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
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out" / "e2e"
DT_VENV = BENCH / "out" / "datatrove-venv"
DT_PACKAGES = ["datatrove[processing]==0.10.1", "orjson", "spacy", "pyarrow", "lxml_html_clean"]
CONTESTANTS = ("siftlake", "datatrove", "extract", "siftlake-s3")


@dataclass
class Result:
    seconds: float
    peak_rss: int
    output: str
    detail: dict[str, object] = field(default_factory=dict)
    peak_pss: int = 0
    """Peak proportional set size of the tree: pages shared between its processes counted once."""
    cpu_seconds: float = 0.0
    """User + system CPU of the whole process tree (and of any helper server the run used)."""

    def cores_busy(self) -> float:
        """Average cores busy over the wall time: idle cores show up on any machine."""
        return self.cpu_seconds / self.seconds if self.seconds else 0.0


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> Result:
    """Run ``cmd``; return its wall time, the peak RSS of its process tree and its stdout.

    Output goes to files, not pipes, so a straggling grandchild cannot hold the run open; processes of
    the tree still alive when the command exits are ended (they are this run's own).
    """
    OUT.mkdir(parents=True, exist_ok=True)
    out_path, err_path = OUT / "last.stdout", OUT / "last.stderr"
    seen: dict[int, psutil.Process] = {}
    cpu_seen: dict[int, float] = {}
    peak, peak_pss = [0], [0]
    stop = threading.Event()
    cpu_before = _children_cpu()
    start = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = psutil.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)

        def poll() -> None:
            rounds = 0
            while not stop.is_set():
                peak[0] = max(peak[0], _sample_tree(proc, seen, cpu_seen))
                if rounds % 5 == 0:  # reading smaps costs more: every 0.5 s
                    peak_pss[0] = max(peak_pss[0], _tree_pss(proc))
                rounds += 1
                stop.wait(0.1)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        code = proc.wait()
        seconds = time.perf_counter() - start
        stop.set()
        watcher.join()
    # Processes that were never waited for (a pool terminated at exit) are missing from the first figure;
    # the second, polled every 0.1 s, misses each process's last moments: the larger is the closer.
    cpu_seconds = max(_children_cpu() - cpu_before, sum(cpu_seen.values()))
    for leftover in seen.values():
        with contextlib.suppress(psutil.Error):
            leftover.kill()
    if code != 0:
        raise SystemExit(f"{cmd[:3]} failed ({code}):\n{err_path.read_text(errors='replace')[-3000:]}")
    return Result(seconds, peak[0], out_path.read_text(), peak_pss=peak_pss[0], cpu_seconds=cpu_seconds)


def _children_cpu() -> float:
    """CPU seconds of every waited-for descendant so far: each process of a contestant's tree waits for
    its own children, so their time adds up into the contestant's when it exits."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _tree_pss(proc: psutil.Process) -> int:
    total = 0
    with contextlib.suppress(psutil.Error):
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_full_info().pss
    return total


def _sample_tree(proc: psutil.Process, seen: dict[int, psutil.Process], cpu_seen: dict[int, float]) -> int:
    """One sample of the tree: returns its RSS now, notes each process in ``seen`` and its CPU seconds so
    far in ``cpu_seen``."""
    total = 0
    try:
        tree = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in tree:
        seen.setdefault(p.pid, p)
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
            times = p.cpu_times()
            cpu_seen[p.pid] = times.user + times.system
    return total


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
    result = run_measured(command, env)
    result.cpu_seconds += server_cpu(env) - server_before
    manifest = json.loads(next((lake / "_runs").glob("*.json")).read_text())
    flow_s = (datetime.fromisoformat(manifest["finished_at"]) - datetime.fromisoformat(manifest["started_at"]))
    work_s = sum(manifest["seconds"].values()) / workers
    result.detail = {"counts": json.loads(result.output.strip().splitlines()[-1]), "seconds": manifest["seconds"],
                     "flow_s": round(flow_s.total_seconds(), 1), "stage_work_s_per_worker": round(work_s, 1),
                     "not_stage_work_pct": round(100 * (1 - work_s / result.seconds), 1)}
    shutil.rmtree(lake, ignore_errors=True)
    return result


@contextlib.contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server on a free port of 127.0.0.1; yields the environment that points clients at it."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(150):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{env['AWS_ENDPOINT_URL']}/moto-api/", timeout=1).close()
                break
            time.sleep(0.2)
        yield env
    finally:
        server.terminate()
        server.wait(10)


def run_siftlake_s3(corpus: Path, workers: int, tag: str) -> Result:
    import boto3

    with s3_server() as s3_env:
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
                                           "--config", str(config), "--json"), env)
        result.cpu_seconds += server_cpu(env) - server_before
        cache_bytes = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
        result.detail = {"counts": json.loads(result.output.strip().splitlines()[-1]),
                         "index_cache_MiB": round(cache_bytes / 2**20, 1)}
        shutil.rmtree(cache, ignore_errors=True)
    return result


def run_datatrove(corpus: Path, workers: int, tag: str) -> Result:
    python = ensure_datatrove()
    work = OUT / f"datatrove-{tag}"
    result = run_measured([str(python), str(BENCH / "_e2e_datatrove.py"), str(corpus), str(work), str(workers)])
    result.detail = json.loads(result.output.strip().splitlines()[-1])
    shutil.rmtree(work, ignore_errors=True)
    return result


def run_extract(corpus: Path, workers: int, tag: str) -> Result:
    result = run_measured([sys.executable, str(BENCH / "_e2e_extract.py"), str(corpus), str(workers)])
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

    sys.path.insert(0, str(BENCH))
    from _e2e_corpus import build

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

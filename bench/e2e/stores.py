"""One corpus from and to each store: a local folder, S3 (moto), Cloud Storage (fake-gcs-server), Azure Blob (Azurite).

    python -m bench.e2e.stores --docs 2000            # one round of each, local first
    python -m bench.e2e.stores --docs 2000 --rounds 2 --only local gs

The same ``siftlake ingest SOURCE --lake LAKE --json`` as bench/e2e's ``siftlake`` contestant, with SOURCE and the
lake in a bucket of each store's emulator on 127.0.0.1 (the servers of the conformance suite, tests/support). The
emulators' own CPU competes with the run on this machine, which a cloud store would not.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from bench.e2e.__main__ import OUT, background_api, siftlake_cli, siftlake_env
from bench.e2e.corpus import build
from bench.support.meters import run_measured
from tests.support.servers import AzureServer, GCSServer, S3Server, environment, free_port

SERVERS = {"s3": S3Server, "gs": GCSServer, "az": AzureServer}
KINDS = ("local", *SERVERS)


def run(kind: str, corpus: Path, workers: int) -> tuple[float, dict[str, int]]:
    """Wall seconds and counts of one run from and to ``kind``."""
    config = OUT / "siftlake-config.json"
    config.write_text(json.dumps({"runner": {"workers": workers}}))
    work = OUT / f"stores-{kind}"
    shutil.rmtree(work, ignore_errors=True)
    extra = {"SIFTLAKE_CACHE": str(work / "cache"), "SIFTLAKE_SCRATCH": str(work / "scratch")}
    if kind == "local":
        source, lake, settings = str(corpus), str(work / "lake"), {}
        server = None
    else:
        server = SERVERS[kind](free_port())
        server.start()
        settings = server.env
        with environment(settings):
            source, lake = f"{server.bucket('bench-raw')}/corpus", f"{server.bucket('bench-lake')}/lake"
            server.upload_tree(corpus, source)
    try:
        command = siftlake_cli("ingest", source, "--lake", lake, "--config", str(config), "--json")
        result = run_measured(command, OUT, siftlake_env(**extra, **settings))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    counts = json.loads(result.output.strip().splitlines()[-1])
    return result.seconds, {name: counts[name] for name in ("units", "documents", "duplicates", "rejects")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=KINDS, default=list(KINDS))
    args = parser.parse_args()
    corpus = build(OUT / f"corpus-{args.docs}", args.docs)
    seconds: dict[str, list[float]] = {kind: [] for kind in args.only}
    with background_api(siftlake_env()):
        for round_no in range(args.rounds):
            for kind in args.only:
                wall, counts = run(kind, corpus, args.workers)
                seconds[kind].append(wall)
                print(f"round {round_no + 1} {kind:5s} {wall:7.1f} s  {json.dumps(counts)}", flush=True)
    local = statistics.median(seconds["local"]) if "local" in seconds else None
    for kind, walls in seconds.items():
        ratio = f"  {statistics.median(walls) / local:.2f}x local" if local else ""
        print(f"{kind:5s} median {statistics.median(walls):7.1f} s{ratio}")


if __name__ == "__main__":
    main()

"""``siftlake forget --with-copies`` of 100 URLs from a lake the real ingest built, then a re-crawl of them.

    .venv/bin/python -m bench.forget [--docs 3000] [--runs 3] [--urls 100] [--out bench/out/forget]

The corpus is the end-to-end one (bench/e2e/corpus.py: every page of the corpora's ``*/html/``, then exact and near
copies of them), ingested by ``siftlake ingest`` in ``--runs`` runs (one documents file each). ``--urls`` URLs of
the lake, drawn with a fixed seed, are taken down with ``--with-copies``; the bench checks that only the files
holding removed or re-pointed rows changed (sha256 before and after) and that rows after = rows before minus
those removed, then ingests a new file holding the same records (same URLs and pages) and a near copy of each
at a new URL: every one of them should be a ``taken_down`` reject, and no new document should appear.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from bench.e2e.corpus import build, perturb

REPO = Path(__file__).resolve().parent.parent


def siftlake(*args: str) -> tuple[dict[str, Any], float]:
    """Run the CLI; return the JSON object on its last line and the wall seconds."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flows.cli", *args, "--json"], cwd=REPO, capture_output=True,
                          text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"siftlake {args[0]} failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), seconds


def documents(lake: Path) -> list[dict[str, Any]]:
    files = sorted(str(p) for p in (lake / "documents").glob("**/*.parquet"))
    table = ds.dataset(files, format="parquet").to_table(columns=["doc_id", "url", "dup_cluster"])
    return list(table.to_pylist())


def digests(lake: Path) -> dict[str, str]:
    return {str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((lake / "documents").glob("**/*.parquet"))}


def make_lake(out: Path, docs: int, runs: int) -> Path:
    """The corpus ingested in ``runs`` runs (reused when already built)."""
    lake = out / "lake"
    if (out / "lake.done").exists():
        return lake
    shutil.rmtree(lake, ignore_errors=True)
    parts = sorted(build(out / "corpus", docs).glob("*.jsonl"))
    for run in range(runs):
        source = out / f"run-{run}"
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        for part in parts[run::runs]:
            shutil.copyfile(part, source / part.name)
        counts, seconds = siftlake("ingest", str(source), "--lake", str(lake))
        print(f"ingest run {run}: {counts['documents']} documents ({counts['duplicates']} duplicates) in "
              f"{seconds:.0f} s", flush=True)
    (out / "lake.done").write_text("done")
    return lake


def without_copies(built: Path, out: Path, count: int) -> dict[str, Any]:
    """``count`` URLs of the first run's documents taken down without their copies: which files change."""
    lake = out / "first-run"
    shutil.rmtree(lake, ignore_errors=True)
    shutil.copytree(built, lake)
    before = digests(lake)
    first = min(p.stem for p in (lake / "documents").glob("**/*.parquet"))
    rows = documents(lake)
    files = sorted(str(p) for p in (lake / "documents").glob(f"**/{first}.parquet"))
    urls = sorted(ds.dataset(files, format="parquet").to_table(columns=["url"]).column("url").to_pylist())
    listing = out / "first-run.txt"
    listing.write_text("".join(f"{u}\n" for u in random.Random(3).sample(urls, count)))
    log, seconds = siftlake("forget", "--lake", str(lake), "--urls", str(listing), "--reason", "bench")
    after = digests(lake)
    return {"seconds": round(seconds, 2), "counts": log["counts"], "rows_before": len(rows),
            "files_changed": sorted(k for k in before if before[k] != after[k]) == sorted(log["files_rewritten"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--urls", type=int, default=100)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "forget")
    args = parser.parse_args()
    built = make_lake(args.out, args.docs, args.runs)
    lake = args.out / "forgotten"
    shutil.rmtree(lake, ignore_errors=True)
    shutil.copytree(built, lake)
    before, files_before = documents(lake), digests(lake)
    urls = sorted(random.Random(1).sample(sorted({r["url"] for r in before}), args.urls))
    listing = args.out / "takedown.txt"
    listing.write_text("".join(f"{u}\n" for u in urls))
    log, seconds = siftlake("forget", "--lake", str(lake), "--urls", str(listing), "--reason", "bench",
                            "--with-copies")
    after, files_after = documents(lake), digests(lake)
    changed = sorted(k for k in files_before if files_before[k] != files_after.get(k))
    removed = {r["doc_id"] for r in before} - {r["doc_id"] for r in after}
    holding = sorted({str(Path(k)) for k in log["files_rewritten"]})
    lines = (line for part in sorted((args.out / "corpus").glob("*.jsonl"))
             for line in part.read_text(encoding="utf-8").split("\n") if line)
    records = {r["url"]: r for r in map(json.loads, lines)}
    rng = random.Random(2)
    again = [records[u] for u in urls]
    again += [{**records[u], "id": f"copy-{n}", "url": f"https://elsewhere.example/{n}",
               "html": perturb(records[u]["html"], 0.01, rng)} for n, u in enumerate(urls)]
    recrawl = args.out / "recrawl"
    shutil.rmtree(recrawl, ignore_errors=True)
    recrawl.mkdir()
    (recrawl / "again.jsonl").write_text("".join(json.dumps(r) + "\n" for r in again))
    counts, ingest_s = siftlake("ingest", str(recrawl), "--lake", str(lake))
    print(json.dumps({
        "lake": {"documents": len(before), "files": len(files_before)},
        "forget_first_run_only": without_copies(built, args.out, args.urls),
        "forget": {"urls": len(urls), "seconds": round(seconds, 2), "counts": log["counts"],
                   "files_changed": len(changed), "files_changed_are_those_logged": changed == holding,
                   "rows_after_is_before_minus_removed": len(after) == len(before) - len(removed)
                   == log["counts"]["rows_after"]},
        "recrawl": {"records": len(again), "documents": counts["documents"], "rejects": counts["reject_reasons"],
                    "seconds": round(ingest_s, 1)},
    }, indent=2))


if __name__ == "__main__":
    main()

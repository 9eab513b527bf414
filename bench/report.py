"""The lake report's time and memory on generated lakes (issue 24): ``siftlake report`` on N rows.

    python -m bench.report                       # 20,000 and 1,000,000 rows
    python -m bench.report --rows 20000 --screenshot docs/report-20k.png

Writes (once, cached under bench/out/report-lakes/) a lake of N documents with the lake's real schema
(``flows.lake.documents_schema``), hive-partitioned by ``ingest_date`` over 10 runs as the flow writes
them (one zstd Parquet file per run and table), with 2% as many rejects and a manifest per run. The text
is made of paragraphs drawn from a pool (~1,200 characters a document), in 12 languages' proportions,
from 4,000 hosts under 2,500 registered domains; 10% of the rows are duplicates (exact, near, contained)
of earlier rows. Then it runs ``siftlake report`` in a fresh process and prints its wall seconds (Python
start-up and imports included) and its peak RSS (VmHWM of that process).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from flows import lake as lakefs
from flows.quality import SIGNAL_NAMES

REPO = Path(__file__).resolve().parent.parent

OUT = REPO / "bench" / "out"
RUNS = 10
LANGS = ["en", "de", "fr", "es", "ru", "ja", "pl", "it", "nl", "pt", "zh", "ceb"]
LANG_P = np.array([40, 14, 9, 8, 6, 5, 4, 4, 3, 3, 3, 1], dtype=float) / 100
SUFFIXES = ["com", "org", "net", "de", "co.uk", "fr", "com.au", "es", "github.io", "pl"]
REASONS = [("read", "empty"), ("read", "binary"), ("read", "jsonl_invalid_json"), ("extract", "no_main_content"),
           ("read", "unsupported_type"), ("extract", "extract_timeout")]
WORDS = ["harbour", "council", "budget", "river", "market", "school", "library", "station", "garden", "bridge",
         "museum", "tower", "street", "village", "festival", "weather", "forest", "mountain", "island", "railway"]


def _pool(rng: np.random.Generator, size: int = 3000) -> list[str]:
    """Paragraphs of ~400 characters: sentences of random words (the words do not matter to the report)."""
    out = []
    for _ in range(size):
        sentences = [" ".join(rng.choice(WORDS, rng.integers(6, 14))).capitalize() + "." for _ in range(6)]
        out.append(" ".join(sentences))
    return out


def _hosts(rng: np.random.Generator) -> list[str]:
    domains = [f"site{i}.{SUFFIXES[i % len(SUFFIXES)]}" for i in range(2500)]
    return [f"{rng.choice(['www', 'news', 'blog', 'm'])}.{domains[int(i)]}" for i in rng.zipf(1.3, 4000) % 2500]


def _documents(rng: np.random.Generator, start: int, n: int, run_id: str, pool: list[str],
               hosts: list[str]) -> pa.Table:
    ids = [f"{start + i:032x}" for i in range(n)]
    picks = rng.integers(0, len(pool), (n, 3))
    lengths = rng.integers(1, 4, n)
    texts = ["\n\n".join(pool[j] for j in picks[i, : lengths[i]]) for i in range(n)]
    dup = rng.random(n) < 0.10
    kept_of = [f"{max(0, start + i - int(rng.integers(1, 5000))):032x}" for i in range(n)]
    kinds = rng.choice(["exact", "near", "contained"], n, p=[0.5, 0.35, 0.15])
    host = rng.choice(len(hosts), n)
    columns: dict[str, object] = {
        "doc_id": ids, "source_uri": [f"part-{start // 100000}.jsonl#L{i + 1}" for i in range(n)],
        "url": [None if h % 20 == 0 else f"https://{hosts[h]}/a/{start + i}" for i, h in enumerate(host.tolist())],
        "title": [f"Title {start + i} about the {WORDS[(start + i) % len(WORDS)]}" for i in range(n)],
        "text": texts, "lang": rng.choice(LANGS, n, p=LANG_P).tolist(),
        "content_hash": [f"{(start + i) * 7919:032x}" for i in range(n)],
        "dup_cluster": [k if d else i for i, k, d in zip(ids, kept_of, dup.tolist(), strict=True)],
        "is_duplicate": dup.tolist(),
        "dup_similarity": np.where(dup, rng.uniform(0.6, 1.0, n), 1.0).tolist(),
        "dup_kind": [str(k) if d else None for k, d in zip(kinds, dup.tolist(), strict=True)],
        "dup_containment": np.where(dup, rng.uniform(0.7, 1.0, n), 1.0).tolist(),
        "quality_score": rng.beta(4, 1.5, n).tolist(),
        **{name: rng.random(n).tolist() for name in SIGNAL_NAMES},
        "input_kind": ["html"] * n, "n_chars": [len(t) for t in texts], "run_id": [run_id] * n,
    }
    columns["q_word_count"] = rng.lognormal(5.5, 1.0, n).round().tolist()
    return pa.table(columns, schema=lakefs.documents_schema(SIGNAL_NAMES))


def _rejects(rng: np.random.Generator, n: int, run_id: str) -> pa.Table:
    picked = rng.integers(0, len(REASONS), n)
    return pa.table({"unit_id": [f"r{run_id}{i}" for i in range(n)],
                     "source_uri": [f"bad/{run_id}/{i}.html" for i in range(n)],
                     "stage": [REASONS[p][0] for p in picked], "reason": [REASONS[p][1] for p in picked],
                     "detail": [f"generated reject {i}" for i in range(n)], "run_id": [run_id] * n},
                    schema=lakefs.REJECTS_SCHEMA)


def make_lake(rows: int) -> Path:
    """The generated lake of ``rows`` documents (cached: made once per size)."""
    lake = OUT / "report-lakes" / f"lake-{rows}"
    if (lake / lakefs.RUNS).is_dir() and len(list((lake / lakefs.RUNS).glob("*.json"))) == RUNS:
        return lake
    shutil.rmtree(lake, ignore_errors=True)
    rng = np.random.default_rng(24)
    pool, hosts = _pool(rng), _hosts(rng)
    per_run = rows // RUNS
    for run in range(RUNS):
        run_id = f"202611{run + 1:02d}T000000Z-bench{run:03d}"
        date = f"2026-11-{run + 1:02d}"
        for table, data in ((lakefs.DOCUMENTS, _documents(rng, run * per_run, per_run, run_id, pool, hosts)),
                            (lakefs.REJECTS, _rejects(rng, per_run // 50, run_id))):
            path = lake / table / f"{lakefs.PARTITION_KEY}={date}" / f"run-{run_id}.parquet"
            lakefs.write_parquet_atomic(data, path)
        manifest = {"run_id": run_id, "started_at": f"{date}T00:00:00+00:00",
                    "config": {"source": f"generated/{run}", "quality": {"default_cut": 0.5}},
                    "counts": {"documents": per_run, "duplicates": None, "rejects": per_run // 50},
                    "seconds": {"bench": 0.0}}
        (lake / lakefs.RUNS).mkdir(parents=True, exist_ok=True)
        (lake / lakefs.RUNS / f"{run_id}.json").write_text(json.dumps(manifest))
    return lake


_RUNNER = """
import sys
from flows import cli
code = cli.main(["report", "--lake", sys.argv[1], "--out", sys.argv[2]])
import resource
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
use = resource.getrusage(resource.RUSAGE_SELF)
print("PEAK_KB", peak, use.ru_utime + use.ru_stime)
sys.exit(code)
"""


def time_report(lake: Path, out: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of ``siftlake report`` on the lake, in a fresh process
    (CPU seconds: what the wall time would be on an idle machine, give or take the threads' overlap)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _RUNNER, str(lake), str(out)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"siftlake report failed:\n{done.stderr}")
    fields = next(line.split() for line in done.stdout.splitlines() if line.startswith("PEAK_KB"))
    return seconds, float(fields[2]), int(fields[1]) / 1024


def screenshot(page: Path, target: Path) -> None:
    """A full-page screenshot of the report (system Chromium through playwright), 1,000 px wide."""
    from playwright.sync_api import sync_playwright

    target.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"], headless=True)
        view = browser.new_page(viewport={"width": 1400, "height": 1000}, device_scale_factor=0.72)
        view.goto(page.resolve().as_uri())
        view.screenshot(path=str(target), full_page=True)
        browser.close()
    from PIL import Image

    with Image.open(target) as image:  # a palette image: a third of the bytes, for the README
        image.convert("RGB").quantize(colors=96).save(target, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--screenshot", type=Path, help="save a screenshot of the first size's report here")
    args = parser.parse_args()
    for index, rows in enumerate(args.rows):
        started = time.perf_counter()
        lake = make_lake(rows)
        made = time.perf_counter() - started
        size = sum(p.stat().st_size for p in lake.rglob("*.parquet")) / 1e6
        out = OUT / f"report-{rows}.html"
        for _ in range(args.rounds):
            seconds, cpu, peak = time_report(lake, out)
            page_kb = out.stat().st_size / 1e3
            print(f"rows {rows:>9,}: report {seconds:6.1f} s wall, {cpu:5.1f} s CPU, peak RSS {peak:5.0f} MiB "
                  f"(lake {size:,.0f} MB of Parquet, generated in {made:.0f} s; page {page_kb:.0f} kB)", flush=True)
        if args.screenshot and index == 0:
            screenshot(out, args.screenshot)


if __name__ == "__main__":
    main()

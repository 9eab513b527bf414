"""Extraction quality and speed: siftlake's extract stage vs stock trafilatura, in one run.

Usage::

    nice .venv/bin/python -m bench.extraction                 # every gold set, every page
    nice .venv/bin/python -m bench.extraction --limit 20      # the first 20 pages of each set
    SIFTLAKE_CORPORA=/data/corpora .venv/bin/python -m bench.extraction --sets cleaneval
    nice .venv/bin/python -m bench.extraction --cv-only       # only the cross-validated rules table

A full run (no ``--limit``) ends with the cross-validated table (bench/extraction_cv.py): every mode's
text of every gold page is computed once (~7 min on 2 cores, cached under ``$SIFTLAKE_CACHE``), then the
``combined`` rules are fit on 4 folds and scored on the 5th, and a rule is kept only if its gain holds.

Gold sets are read in place from ``../shared/corpora`` (or ``$SIFTLAKE_CORPORA``), never copied.
Scores: macro bag-of-words P/R/F1 against the gold text (an empty-gold page scores 1 only for an
empty output), snippet P/R/F1 on trafilatura_eval. Every row also gives docs/s, and F1 and speed
as ratios against stock ``trafilatura.extract`` (default mode) measured in the same run.

Timing: siftlake gets the page decoded to ``str`` as its read stage hands it over (decoding is
the read stage's cost, not measured here); stock trafilatura gets the raw bytes, as it would be
called standalone. ``siftlake`` runs with the sandbox (child process + time limit) as in
production; ``siftlake-inproc`` is the same extraction without it, to show the sandbox overhead.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import trafilatura
from justext.core import ParagraphMaker, preprocessor
from trafilatura.utils import load_html

# Cross-validated rules (``--cv-only``, and after the plain table on full runs): bench/extraction_cv.py.
from bench.extraction_cv import decode_page, load_scores, report
from bench.support.gold import BOW_SETS, GOLD_SETS, GoldPage, load_set, score_set
from bench.support.paths import corpora_dir
from flows.document import Document
from flows.extract import ExtractConfig, extract_batch

STOCK_MODES: dict[str, dict[str, bool]] = {
    "stock-default": {},
    "stock-precision": {"favor_precision": True},
    "stock-recall": {"favor_recall": True},
    "stock-fast": {"fast": True},
}
BASELINE = "stock-default"
CHUNK = 8  # pages per turn when systems take turns
Row = tuple[str, str, float, float, float, float]  # set, system, P, R, F1, docs/s


def _documents(pages: list[GoldPage]) -> list[Document]:
    return [
        Document(doc_id=f"{p.set_name}/{p.page_id}", source_uri=p.page_id, text=decode_page(p.raw), kind="html")
        for p in pages
    ]


def run_siftlake(pages: list[GoldPage], config: ExtractConfig) -> tuple[list[str], float]:
    """siftlake's outputs (rejected pages give "") and the seconds extract_batch took."""
    docs = _documents(pages)
    start = time.perf_counter()
    kept, _ = extract_batch(docs, config)
    seconds = time.perf_counter() - start
    texts = {d.doc_id: d.text for d in kept}
    return [texts.get(d.doc_id, "") for d in docs], seconds


def run_stock(pages: list[GoldPage], mode: dict[str, bool]) -> tuple[list[str], float]:
    """Stock trafilatura on the raw bytes, as the corpora README's reference run."""
    outputs: list[str] = []
    start = time.perf_counter()
    for page in pages:
        out = trafilatura.extract(page.raw, include_comments=False, include_tables=True, deduplicate=False, **mode)
        outputs.append(out or "")
    return outputs, time.perf_counter() - start


def warm_up(pages: list[GoldPage]) -> None:
    """Pay one-time costs (imports, trafilatura's caches, the sandbox child's start) before timing."""
    for mode in STOCK_MODES.values():
        run_stock(pages[:1], mode)
    for config in (ExtractConfig(), ExtractConfig(sandbox=False)):
        run_siftlake(pages[:1], config)


def _systems() -> dict[str, Callable[[list[GoldPage]], tuple[list[str], float]]]:
    systems: dict[str, Callable[[list[GoldPage]], tuple[list[str], float]]] = {
        name: (lambda pages, mode=mode: run_stock(pages, mode)) for name, mode in STOCK_MODES.items()
    }
    systems["siftlake"] = lambda pages: run_siftlake(pages, ExtractConfig())
    systems["siftlake-inproc"] = lambda pages: run_siftlake(pages, ExtractConfig(sandbox=False))
    return systems


def bench_set(name: str, limit: int | None, systems: list[str]) -> tuple[list[GoldPage], list[Row]]:
    """Score and time each system on one gold set; returns the pages and one row per system.

    Systems take turns on chunks of pages, so load from other processes on a shared machine
    falls on all of them alike and the speed ratios stay fair.
    """
    pages = load_set(name, limit)
    table = _systems()
    warm_up(pages)
    outputs: dict[str, list[str]] = {system: [] for system in systems}
    seconds = dict.fromkeys(systems, 0.0)
    for start in range(0, len(pages), CHUNK):
        chunk = pages[start : start + CHUNK]
        for system in systems:
            out, took = table[system](chunk)
            outputs[system] += out
            seconds[system] += took
    rows: list[Row] = []
    for system in systems:
        precision, recall, f1 = score_set(pages, outputs[system])
        rows.append((name, system, precision, recall, f1, len(pages) / seconds[system] if seconds[system] else 0.0))
    return pages, rows


def full_page_text(raw: bytes) -> str:
    """The whole page as plain text, one line per block, chrome included (justext's segmentation)."""
    tree = load_html(raw)
    if tree is None:
        return ""
    return "\n".join(p.text for p in ParagraphMaker.make_paragraphs(preprocessor(tree)))


def bench_chrome(pages: list[GoldPage]) -> list[Row]:
    """Plain-text inputs: the page rendered as text with its chrome, before and after siftlake's text path."""
    renderings = {
        "recall-text": [run_stock([p], STOCK_MODES["stock-recall"])[0][0] for p in pages],
        "fullpage-text": [full_page_text(p.raw) for p in pages],
    }
    rows: list[Row] = []
    for label, texts in renderings.items():
        docs = [Document(doc_id=str(i), source_uri=str(i), text=t, kind="text") for i, t in enumerate(texts)]
        start = time.perf_counter()
        kept, _ = extract_batch(docs, ExtractConfig())
        seconds = time.perf_counter() - start
        cleaned = {d.doc_id: d.text for d in kept}
        outputs = {f"{label} as is": texts, f"{label} siftlake": [cleaned.get(d.doc_id, "") for d in docs]}
        for system, outs in outputs.items():
            precision, recall, f1 = score_set(pages, outs)
            speed = len(pages) / seconds if seconds and system.endswith("siftlake") else 0.0
            rows.append((pages[0].set_name, system, precision, recall, f1, speed))
    return rows


def print_chrome_table(rows: list[Row]) -> None:
    print("\nplain-text chrome removal (text rendered from the page, chrome included; scored against the gold)")
    print(f"{'set':<20} {'rendering':<24} {'P':>6} {'R':>6} {'F1':>6} {'docs/s':>7}")
    for s, system, p, r, f1, dps in rows:
        print(f"{s:<20} {system:<24} {p:6.4f} {r:6.4f} {f1:6.4f} {dps:7.0f}")


def print_table(rows: list[Row], counts: dict[str, int]) -> None:
    base = {r[0]: r for r in rows if r[1] == BASELINE}
    print(
        f"{'set':<20} {'docs':>5} {'system':<16} {'P':>6} {'R':>6} {'F1':>6} {'F1-base':>8} {'docs/s':>7} {'x base':>6}"
    )
    for s, system, p, r, f1, dps in rows:
        b = base.get(s)
        df = f"{f1 - b[4]:+.4f}" if b else "n/a"
        ratio = f"{dps / b[5]:.2f}" if b and b[5] else "n/a"
        print(f"{s:<20} {counts[s]:>5} {system:<16} {p:6.4f} {r:6.4f} {f1:6.4f} {df:>8} {dps:7.1f} {ratio:>6}")


def overall_rate(rows: list[Row], counts: dict[str, int], system: str) -> float:
    """Pages per second over every set: total pages / total seconds."""
    picked = [r for r in rows if r[1] == system and r[5]]
    seconds = sum(counts[r[0]] / r[5] for r in picked)
    return sum(counts[r[0]] for r in picked) / seconds if seconds else 0.0


def check_targets(rows: list[Row], counts: dict[str, int]) -> list[str]:
    """The issue's acceptance criteria, as failures (empty = all met)."""
    failures: list[str] = []
    for s in sorted({r[0] for r in rows}):
        mine = {r[1]: r for r in rows if r[0] == s}
        if "siftlake" not in mine:
            continue
        sift = mine["siftlake"]
        best = max((r for name, r in mine.items() if name.startswith("stock-")), key=lambda r: r[4], default=None)
        if best and sift[4] < best[4]:
            failures.append(f"{s}: F1 {sift[4]:.4f} < best stock {best[1]} {best[4]:.4f}")
        base = mine.get(BASELINE)
        if base and s in ("cleaneval", "mozilla_readability") and sift[4] < base[4] + 0.01:
            failures.append(f"{s}: F1 {sift[4]:.4f} < {BASELINE} + 0.01 = {base[4] + 0.01:.4f}")
    sift, base = overall_rate(rows, counts, "siftlake"), overall_rate(rows, counts, BASELINE)
    if sift and base:
        print(f"overall docs/s: siftlake {sift:.1f}, {BASELINE} {base:.1f}, ratio {sift / base:.2f}")
        if sift < 0.8 * base:
            failures.append(f"throughput {sift:.1f} docs/s < 0.8 x {BASELINE} {base:.1f}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(GOLD_SETS), help="comma-separated gold sets")
    parser.add_argument("--limit", type=int, default=None, help="pages per set (default: all)")
    parser.add_argument("--systems", default=",".join([*STOCK_MODES, "siftlake", "siftlake-inproc"]))
    parser.add_argument("--no-chrome", action="store_true", help="skip the plain-text chrome table")
    parser.add_argument("--no-cv", action="store_true", help="skip the cross-validated rules table")
    parser.add_argument("--cv-only", action="store_true", help="only the cross-validated rules table (cached)")
    args = parser.parse_args(argv)
    if args.cv_only:
        failures = report(load_scores(args.sets.split(",")))
        print("targets: " + ("all met" if not failures else "NOT MET: " + "; ".join(failures)))
        return 0
    print(f"corpora: {corpora_dir()}  trafilatura {trafilatura.__version__}  pages per set: {args.limit or 'all'}")
    rows: list[Row] = []
    chrome_rows: list[Row] = []
    counts: dict[str, int] = {}
    for name in args.sets.split(","):
        pages, set_rows = bench_set(name, args.limit, args.systems.split(","))
        counts[name] = len(pages)
        rows += set_rows
        if name in BOW_SETS and not args.no_chrome:
            chrome_rows += bench_chrome(pages)
        print(f"... {name} done", file=sys.stderr, flush=True)
    print_table(rows, counts)
    if chrome_rows:
        print_chrome_table(chrome_rows)
    failures = check_targets(rows, counts)
    if not args.no_cv and args.limit is None:
        failures += report(load_scores(args.sets.split(",")))
    print("targets: " + ("all met" if not failures else "NOT MET: " + "; ".join(failures)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Build the end-to-end benchmark corpus: JSONL shards of HTML pages, with exact and near duplicates.

Every ``*/html/*`` page of the corpora (``bench.support.paths.corpora_dir``; gunzipped when it ends in ``.gz``) is
decoded once with siftlake's decoder, so siftlake and datatrove read the very same strings. The corpus cycles over
the pages in a shuffled order: the first pass is the pages as they are; later passes are exact
copies (30%) or copies with 0.5-3% of the words of their text nodes replaced (70%), i.e. near
duplicates. Each JSONL line is ``{"id", "url", "html"}``.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import sys
from pathlib import Path

from bench.support.paths import corpora_dir
from flows.read import DecodeError, decode_bytes

DOCS_PER_FILE = 100
_TEXT_NODE = re.compile(r">([^<]{20,})<")
_WORD = re.compile(r"[A-Za-z]{3,}")
_VOCAB = ("river", "quantum", "lantern", "orchard", "velvet", "harbor", "meadow", "cobalt", "tundra", "saffron",
          "granite", "willow", "ember", "falcon", "prism", "juniper", "canyon", "mosaic", "thistle", "zephyr")


def load_pages() -> list[str]:
    """The throughput corpus: every page under ``*/html/``, decoded (undecodable pages left out)."""
    pages = []
    for path in sorted(corpora_dir().glob("*/html/*")):
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        try:
            pages.append(decode_bytes(raw, is_html=True, declared=None))
        except DecodeError:
            continue
    return pages


def perturb(page: str, rate: float, rng: random.Random) -> str:
    """Replace about ``rate`` of the words inside text nodes: a near duplicate of the page."""
    def node(match: re.Match[str]) -> str:
        def word(w: re.Match[str]) -> str:
            return rng.choice(_VOCAB) if rng.random() < rate else w.group(0)
        return ">" + _WORD.sub(word, match.group(1)) + "<"
    return _TEXT_NODE.sub(node, page)


def build(out: Path, docs: int, seed: int = 7) -> Path:
    """Write ``docs`` documents as JSONL files under ``out`` (reused when already built)."""
    done = out.with_name(out.name + ".done")
    stamp = f"{docs} documents, {DOCS_PER_FILE} a file, seed {seed}"
    if done.exists() and done.read_text() == stamp:
        return out
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.jsonl"):
        old.unlink()
    rng = random.Random(seed)
    pages = load_pages()
    order = list(range(len(pages)))
    rng.shuffle(order)
    for start in range(0, docs, DOCS_PER_FILE):
        with open(out / f"part-{start // DOCS_PER_FILE:05d}.jsonl", "w", encoding="utf-8") as handle:
            for n in range(start, min(docs, start + DOCS_PER_FILE)):
                handle.write(json.dumps(_record(n, pages, order, rng), ensure_ascii=False) + "\n")
    done.write_text(stamp)
    return out


def _record(n: int, pages: list[str], order: list[int], rng: random.Random) -> dict[str, str]:
    page = pages[order[n % len(pages)]]
    if n >= len(pages) and rng.random() < 0.7:
        page = perturb(page, rng.uniform(0.005, 0.03), rng)
    return {"id": f"doc-{n:07d}", "url": f"https://example.org/{n}", "html": page}


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), int(sys.argv[2])))

"""Baseline (c): trafilatura extraction alone, with siftlake's extract settings, on N processes.

    python -m bench.e2e.extract_alone CORPUS_DIR WORKERS

Each worker reads whole JSONL files and extracts every page in-process with
``flows.extract.html_modes.extract_html`` and the options of the default ``ExtractConfig`` (no sandbox,
no normalization, nothing written): the floor any pipeline that extracts the same way pays.
Prints one JSON line: documents and extracted characters.
"""

from __future__ import annotations

import json
import sys
from multiprocessing import get_context
from pathlib import Path

from flows.extract import ExtractConfig, HtmlOptions
from flows.extract.html_modes import extract_html


def _options() -> HtmlOptions:
    """Exactly the options the extract stage hands to ``extract_html`` under the default config."""
    return HtmlOptions.of(ExtractConfig())


def extract_file(path: str) -> tuple[int, int]:
    options = _options()
    docs = chars = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            docs += 1
            try:
                chars += len(extract_html(json.loads(line)["html"], options).text)
            except Exception:  # a page that fails counts as extracted (empty), as in the pipelines
                continue
    return docs, chars


def main() -> None:
    corpus, workers = Path(sys.argv[1]), int(sys.argv[2])
    files = [str(p) for p in sorted(corpus.glob("*.jsonl"))]
    with get_context("spawn").Pool(workers) as pool:
        results = pool.map(extract_file, files, chunksize=1)
    print(json.dumps({"documents": sum(d for d, _ in results), "chars": sum(c for _, c in results)}))


if __name__ == "__main__":
    main()

"""Language identification: fastText lid.176 (siftlake's ``flows.language``) against py3langid (the baseline).

Labelled texts are the corpora's pages that declare their language: ``<html lang="...">`` in the raw page
(every HTML corpus), or Readability's ``meta_lang`` (mozilla_readability). The text is the gold article
where a corpus has one, else trafilatura's extract of the page (cached: it takes a minute). A declared
language is a label with noise (templates say ``en`` on pages in other languages); both identifiers are
scored against the same labels. Short texts are the first 100 and 30 characters of the same texts.

Usage: ``.venv/bin/python -m bench.language [--rebuild]`` from the repository root.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator

from bench.support.paths import cache_dir, corpora_dir
from flows.language import SAMPLE_CHARS, detect_language

CACHE = cache_dir() / "language_devset_v1.json"
HTML_SETS = ("scrapinghub_aeb", "mozilla_readability", "cleaneval", "cleanportaleval", "trafilatura_eval",
             "postlight_fixtures")
_HTML_LANG = re.compile(rb"<html\b[^>]*?\blang\s*=\s*[\"']?\s*([A-Za-z]{2,3})\b", re.IGNORECASE)
MIN_CHARS = 200
SHORT = (100, 30)
REPEATS = 3
SAMPLES = (200, 300, 400, 600, 1000, 2000)

Identifier = Callable[[str], tuple[str | None, float]]


def _rows(name: str) -> Iterator[dict[str, object]]:
    folder = corpora_dir() / name
    index = folder / ("manifest.jsonl" if name == "postlight_fixtures" else "gold.jsonl")
    with open(index, encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def _raw(name: str, rel: str) -> bytes:
    data = (corpora_dir() / name / rel).read_bytes()
    return gzip.decompress(data) if rel.endswith(".gz") else data


def _declared(row: dict[str, object], raw: bytes) -> str | None:
    meta = row.get("meta_lang")
    if isinstance(meta, str) and meta:
        return meta.split("-")[0].lower()
    match = _HTML_LANG.search(raw[:20_000])
    return match.group(1).decode().lower() if match else None


def build() -> list[tuple[str, str, str]]:
    """(page id, declared language, text) for every page that declares one and has enough text."""
    import trafilatura

    labelled = []
    for name in HTML_SETS:
        for row in _rows(name):
            raw = _raw(name, str(row["html_path"]))
            lang = _declared(row, raw)
            if lang is None or row.get("gold_empty"):
                continue
            text = str(row.get("text") or "") or trafilatura.extract(raw, fast=True, deduplicate=False) or ""
            if len(text) >= MIN_CHARS:
                labelled.append((f"{name}:{row['id']}", lang, text))
    return labelled


def load(rebuild: bool) -> list[tuple[str, str, str]]:
    if CACHE.exists() and not rebuild:
        return [tuple(item) for item in json.loads(CACHE.read_text(encoding="utf-8"))]  # type: ignore[misc]
    labelled = build()
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_text(json.dumps(labelled), encoding="utf-8")
    return labelled


def py3langid() -> Identifier:
    """The baseline, as siftlake ran it before: py3langid with normalized probabilities, first 2,000 chars."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def identify(text: str) -> tuple[str | None, float]:
        lang, score = identifier.classify(text[:2000])
        return str(lang), float(score)

    return identify


def fasttext_whole() -> Identifier:
    """fastText on the whole text, as datatrove runs it (for reference: siftlake reads a sample)."""
    from flows.language import model

    def identify(text: str) -> tuple[str | None, float]:
        labels, scores = model().predict(text.replace("\n", " "), k=1)
        return str(labels[0]).removeprefix("__label__"), float(scores[0])

    return identify


def measure(identify: Identifier, texts: list[str], labels: list[str]) -> tuple[float, float, list[float]]:
    """(accuracy, ms per text, scores of the correct answers)."""
    identify(texts[0])  # load the model outside the timing
    elapsed = float("inf")
    for _ in range(REPEATS):  # the fastest of a few runs: the least disturbed by other processes
        started = time.perf_counter()
        results = [identify(text) for text in texts]
        elapsed = min(elapsed, time.perf_counter() - started)
    correct = [score for (lang, score), label in zip(results, labels, strict=True) if lang == label]
    return len(correct) / len(texts), 1000 * elapsed / len(texts), correct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached labelled texts")
    args = parser.parse_args()
    labelled = load(args.rebuild)
    labels = [lang for _, lang, _ in labelled]
    print(f"{len(labelled)} pages declare a language: " +
          ", ".join(f"{lang} {n}" for lang, n in Counter(labels).most_common(12)))
    systems = {"py3langid (baseline)": py3langid(), "fastText, whole text": fasttext_whole(),
               f"fastText, first {SAMPLE_CHARS} (siftlake)": detect_language}
    print(f"\n{'texts':<18}{'system':<32}{'accuracy':>9}{'ms/text':>9}{'speed-up':>9}{'median score':>13}")
    for title, cut in [("whole pages", None), *((f"first {n} chars", n) for n in SHORT)]:
        texts = [text[:cut] if cut else text for _, _, text in labelled]
        baseline_ms = 0.0
        for system, identify in systems.items():
            accuracy, ms, correct = measure(identify, texts, labels)
            baseline_ms = baseline_ms or ms
            median = sorted(correct)[len(correct) // 2] if correct else 0.0
            print(f"{title:<18}{system:<32}{accuracy:>9.3f}{ms:>9.3f}{baseline_ms / ms:>8.1f}x{median:>13.3f}")
    report_samples([text for _, _, text in labelled], labels)


def report_samples(texts: list[str], labels: list[str]) -> None:
    """How far a sample's score is from the whole text's, and how often a 0.65 cut decides the same."""
    import flows.language as language

    whole = fasttext_whole()
    reference = [whole(text) for text in texts]
    print(f"\nfastText on the first N characters vs on the whole text ({len(texts)} pages)")
    print(f"{'N':>6}{'accuracy':>10}{'ms/text':>9}{'mean |score diff|':>19}{'same keep at 0.65':>19}")
    for chars in SAMPLES:
        detect = functools.partial(language.detect_language, sample_chars=chars)
        accuracy, ms, _ = measure(detect, texts, labels)
        results = [detect(text) for text in texts]
        diff = sum(abs(s - w) for (_, s), (_, w) in zip(results, reference, strict=True)) / len(texts)
        same = sum((lang == wl and s >= 0.65) == (w >= 0.65)
                   for (lang, s), (wl, w) in zip(results, reference, strict=True)) / len(texts)
        mark = " (siftlake)" if chars == language.SAMPLE_CHARS else ""
        print(f"{chars:>6}{accuracy:>10.3f}{ms:>9.3f}{diff:>19.4f}{same:>19.4f}{mark}")

if __name__ == "__main__":
    main()

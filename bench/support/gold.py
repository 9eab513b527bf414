"""The extraction gold sets: loading, decoding and scoring, shared by ``bench.extraction`` and the F1-floor test.

The corpora live outside the repository (``bench.support.paths.corpora_dir``) and are read in place,
never copied. Scoring follows the corpora README: bag-of-words P/R/F1 per page,
macro-averaged, for the text-gold sets; snippet substring tests for trafilatura_eval.
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ftfy
from charset_normalizer import from_bytes

from bench.support.paths import corpora_dir

BOW_SETS = ("scrapinghub_aeb", "mozilla_readability", "cleaneval", "cleanportaleval")
SNIPPET_SETS = ("trafilatura_eval",)
GOLD_SETS = BOW_SETS + SNIPPET_SETS

_WORD = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


@dataclass(slots=True)
class GoldPage:
    """One gold page: raw bytes plus what the scorer compares against."""

    set_name: str
    page_id: str
    raw: bytes
    text: str = ""
    gold_empty: bool = False
    with_snippets: list[str] = field(default_factory=list)
    without_snippets: list[str] = field(default_factory=list)


def decode_html(raw: bytes) -> str:
    """Decode page bytes: declared charset first, then strict UTF-8, then charset_normalizer."""
    match = _META_CHARSET.search(raw[:8192])
    candidates = [match.group(1).decode("ascii", "ignore")] if match else []
    candidates.append("utf-8")
    for enc in candidates:
        try:
            return raw.decode(enc)
        except (LookupError, UnicodeDecodeError):
            continue
    best = from_bytes(raw[:200_000]).best()
    enc = best.encoding if best is not None else "utf-8"
    return raw.decode(enc, errors="replace")


def _page(name: str, base: Path, row: dict[str, object]) -> GoldPage:
    path = base / str(row["html_path"])
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return GoldPage(
        set_name=name,
        page_id=str(row["id"]),
        raw=raw,
        text=str(row.get("text") or ""),
        gold_empty=bool(row.get("gold_empty", False)),
        with_snippets=list(row.get("with") or []),  # type: ignore[call-overload]
        without_snippets=list(row.get("without") or []),  # type: ignore[call-overload]
    )


def _rows(base: Path) -> list[dict[str, object]]:
    with open(base / "gold.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_set(name: str, limit: int | None = None, root: Path | None = None) -> list[GoldPage]:
    """Read one gold set's dev pages (all, or the first ``limit`` in gold.jsonl order)."""
    base = (root or corpora_dir()) / name
    return [_page(name, base, row) for row in _rows(base)[:limit]]


def load_sample(name: str, size: int, root: Path | None = None) -> list[GoldPage]:
    """``size`` pages spread evenly over the set (a fixed, representative subset for fast tests)."""
    base = (root or corpora_dir()) / name
    rows = _rows(base)
    picks = sorted({round(i * (len(rows) - 1) / max(size - 1, 1)) for i in range(size)})
    return [_page(name, base, rows[i]) for i in picks]


def iter_sets(names: tuple[str, ...] = GOLD_SETS, limit: int | None = None) -> Iterator[list[GoldPage]]:
    """Yield each named gold set in turn."""
    for name in names:
        yield load_set(name, limit)


def _bag(text: str) -> Counter[str]:
    # CleanEval gold has mojibake: ftfy + NFKC + lower-case before tokenizing (README "How to score").
    norm = unicodedata.normalize("NFKC", ftfy.fix_text(text)).lower()
    return Counter(_WORD.findall(norm))


def bow_prf(extracted: str, gold: str, gold_empty: bool = False) -> tuple[float, float, float]:
    """Bag-of-words P/R/F1 of one page; an empty-gold page scores 1 only when the output is empty."""
    got, want = _bag(extracted), _bag(gold)
    if gold_empty or not want:
        perfect = 1.0 if not got else 0.0
        return perfect, perfect, perfect
    if not got:
        return 0.0, 0.0, 0.0
    overlap = sum((got & want).values())
    precision = overlap / sum(got.values())
    recall = overlap / sum(want.values())
    f1 = 2 * precision * recall / (precision + recall) if overlap else 0.0
    return precision, recall, f1


def snippet_counts(extracted: str, page: GoldPage) -> tuple[int, int, int, int]:
    """(tp, fn, fp, tn) of one trafilatura_eval page by whitespace-normalised substring tests."""
    flat = _SPACE.sub(" ", extracted).strip()
    tp = fn = fp = tn = 0
    for snip in page.with_snippets:
        if _SPACE.sub(" ", snip).strip() in flat:
            tp += 1
        else:
            fn += 1
    for snip in page.without_snippets:
        if _SPACE.sub(" ", snip).strip() in flat:
            fp += 1
        else:
            tn += 1
    return tp, fn, fp, tn


def score_set(pages: list[GoldPage], outputs: list[str]) -> tuple[float, float, float]:
    """Set-level (P, R, F1): macro BoW for text-gold sets, pooled snippet counts for trafilatura_eval."""
    if not pages:
        return 0.0, 0.0, 0.0
    if pages[0].set_name in SNIPPET_SETS:
        tp = fn = fp = 0
        for page, out in zip(pages, outputs, strict=True):
            a, b, c, _ = snippet_counts(out, page)
            tp, fn, fp = tp + a, fn + b, fp + c
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1
    rows = [bow_prf(out, p.text, p.gold_empty) for p, out in zip(pages, outputs, strict=True)]
    n = len(rows)
    return (sum(r[0] for r in rows) / n, sum(r[1] for r in rows) / n, sum(r[2] for r in rows) / n)

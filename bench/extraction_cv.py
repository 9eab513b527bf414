"""Cross-validated extraction rules: each ``combined`` rule kept only if its gain holds on pages it was not fit on.

Every mode's text of every gold page (trafilatura fast, default, favor_recall, justext, the page's text
length; and the four stock modes on the raw bytes) is computed once and cached with its score, so the
rules can be gridded offline: choosing among cached texts costs microseconds, extracting costs ~20 ms.

The dev pages of each gold set are dealt into ``FOLDS`` folds. In each fold, the rule parameters are fit
(grid search, objective: the mean F1 of the five sets, less the shortfall below each set's best stock
mode) on the other folds and scored on the held one;
the cross-validated F1 of a set pools every page's held-out result. A rule is kept only if its gain
holds across folds: fit with it and without it on the training folds, the held folds gain on average,
and more of them gain than lose.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import trafilatura

from bench.support.gold import SNIPPET_SETS, GoldPage, bow_prf, decode_html, load_set, snippet_counts
from bench.support.paths import cache_dir
from flows.extract import HtmlOptions
from flows.extract.html_modes import choose, page_candidates
from flows.normalize import normalize_chars, normalize_text
from flows.read import DecodeError, decode_bytes

FOLDS = 5
CACHE_VERSION = 1  # raise when what a cached page holds changes
MODES = ("fast", "default", "recall", "justext")
STOCK = {"stock-default": {}, "stock-precision": {"favor_precision": True}, "stock-recall": {"favor_recall": True},
         "stock-fast": {"fast": True}}
# Weight of falling below a set's best stock mode in the fit (0 and 1 kept the same rules; 3 and 10 fit the
# portals' and trafilatura_eval's margins at cleaneval's expense and did worse held out).
SHORTFALL_WEIGHT = 1.0
OFF = 1e18  # a threshold no page reaches: the rule never fires
# Each rule, the options it reads, the values tried, and the values that switch it off.
GRID: dict[str, dict[str, list[float | bool]]] = {
    "markup_fast": {"markup_fast": [True], "markup_mode": ["fast", "default"]},
    "short_text": {"short_text_chars": [500, 1000, 2000, OFF], "short_text_ratio": [1.1, 1.5, 3.0]},
    "default_page_share": {"default_page_share": [0.0, 0.3, 0.5, 0.8]},
    "recall_default": {"recall_default_share": [0.6, 0.8, 0.9]},
    "justext": {"justext_min_ratio": [1.2, 1.5, 2.0], "justext_min_cover": [0.4, 0.6, 0.8]},
}
RULE_OFF: dict[str, dict[str, float | bool]] = {
    "markup_fast": {"markup_fast": False},
    "short_text": {"short_text_chars": 0},
    "default_page_share": {"default_page_share": OFF},
    "recall_default": {"recall_default_share": OFF},
    "justext": {"justext_min_ratio": OFF, "justext_min_chars": OFF},
}


@dataclass
class PageScores:
    """One gold page: what the rules read (lengths, emptiness, page length, cover) and each text's score.

    ``scores[name]`` is the page's BoW F1, or its (tp, fn, fp) snippet counts on trafilatura_eval.
    """

    set_name: str
    page_id: str
    has_markup: bool
    lengths: dict[str, int]
    blank: dict[str, bool]
    page_chars: int
    cover: float
    scores: dict[str, list[float]]


def _score(page: GoldPage, text: str) -> list[float]:
    text = normalize_text(text)  # what extract_batch hands on (an empty text is a reject: output "")
    if page.set_name in SNIPPET_SETS:
        return [float(v) for v in snippet_counts(text, page)[:3]]
    return [bow_prf(text, page.text, page.gold_empty)[2]]


def page_scores(page: GoldPage, html: str) -> PageScores:
    """Every candidate of one page, computed in-process exactly as ``extract_html`` would."""
    texts = dict.fromkeys(MODES, "")
    page_chars, cover, has_markup = 0, 1.0, False
    candidates = page_candidates(html, HtmlOptions())
    if candidates is not None:
        has_markup = candidates.has_markup
        texts = {"fast": candidates.fast, "default": candidates.default, "recall": candidates.recall}
        page_chars = candidates.page_chars
        texts["justext"] = candidates.justext  # last: justext consumes the tree
        cover = candidates.cover
    for name, mode in STOCK.items():
        texts[name] = trafilatura.extract(page.raw, include_comments=False, include_tables=True,
                                          deduplicate=False, **mode) or ""
    return PageScores(page.set_name, page.page_id, has_markup, {m: len(texts[m]) for m in MODES},
                      {m: not texts[m].strip() for m in MODES}, page_chars, cover,
                      {name: _score(page, text) for name, text in texts.items()})


def decode_page(raw: bytes) -> str:
    """What the read + normalize stages hand to extract: decoded, characters normalized."""
    try:
        text = decode_bytes(raw, is_html=True)
    except DecodeError:
        text = decode_html(raw)
    return normalize_chars(text)


@cache
def _pages(set_name: str) -> list[GoldPage]:
    return load_set(set_name)


def _work(item: tuple[str, int]) -> dict[str, object]:
    set_name, index = item
    page = _pages(set_name)[index]
    return page_scores(page, decode_page(page.raw)).__dict__


def _cache_file(sets: Iterable[str]) -> Path:
    # What the cache holds depends on how candidates are computed (not on ``choose``): raise CACHE_VERSION
    # when ``page_scores`` or the extraction modes change; trafilatura's version and the sets are in the key.
    key = hashlib.sha1(f"v{CACHE_VERSION} {trafilatura.__version__} {','.join(sets)}".encode()).hexdigest()[:12]
    return cache_dir() / f"extraction_candidates_{key}.json"


def load_scores(sets: list[str], workers: int = 2) -> list[PageScores]:
    """Every page's candidates and scores, from the cache or computed (a few minutes on two cores)."""
    cache = _cache_file(sets)
    if cache.exists():
        return [PageScores(**row) for row in json.loads(cache.read_text(encoding="utf-8"))]
    items = [(name, index) for name in sets for index in range(len(load_set(name)))]
    with Pool(workers) as pool:
        rows = pool.map(_work, items, chunksize=8)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(rows), encoding="utf-8")
    return [PageScores(**row) for row in rows]  # type: ignore[arg-type]


class _Placeholder:
    """``Candidates`` over cached lengths: each text a distinct string of its length, blank where it was."""

    def __init__(self, page: PageScores) -> None:
        self.has_markup, self.page_chars, self.cover = page.has_markup, page.page_chars, page.cover
        self.texts = {m: (" " if page.blank[m] else "x") * page.lengths[m] for m in MODES}
        self.fast, self.default = self.texts["fast"], self.texts["default"]
        self.recall, self.justext = self.texts["recall"], self.texts["justext"]

    def chosen(self, options: HtmlOptions) -> str:
        text = choose(self, options)
        return next((m for m in MODES if self.texts[m] is text), "default" if not text else "fast")


class Arrays:
    """The pages as numpy arrays, to evaluate a set of options on all of them at once."""

    def __init__(self, pages: list[PageScores]) -> None:
        self.pages = pages
        self.sets = sorted({p.set_name for p in pages})
        self.set_of = np.array([self.sets.index(p.set_name) for p in pages])
        self.markup = np.array([p.has_markup for p in pages])
        self.length = {m: np.array([p.lengths[m] for p in pages], dtype=np.float64) for m in MODES}
        self.blank = {m: np.array([p.blank[m] for p in pages]) for m in MODES}
        self.page_chars = np.array([p.page_chars for p in pages], dtype=np.float64)
        self.cover = np.array([p.cover for p in pages], dtype=np.float64)
        names = [*MODES, *STOCK]
        self.names = names
        # scores[k, page, :] for candidate names[k]: [F1, 0, 0] or [tp, fn, fp]
        self.scores = np.zeros((len(names), len(pages), 3))
        for i, page in enumerate(pages):
            for k, name in enumerate(names):
                values = page.scores[name]
                self.scores[k, i, : len(values)] = values
        self.snippets = np.array([p.set_name in SNIPPET_SETS for p in pages])

    def choice(self, o: HtmlOptions) -> np.ndarray:
        """``choose`` for every page, vectorized: the index in MODES of the text each page gets."""
        fast, default, recall, justext = (self.length[m] for m in MODES)
        has_default, has_recall = ~self.blank["default"], ~self.blank["recall"]
        with np.errstate(invalid="ignore", over="ignore"):
            marked = np.where(fast >= o.short_text_chars, 0, np.where(default > o.short_text_ratio * fast, 1, 0))
            if o.markup_mode == "default":
                marked = np.where(has_default, 1, 0)
            chosen = np.where(has_default & (default >= o.recall_default_share * recall), 1, 2)
            skip_justext = has_recall & (self.page_chars <= o.justext_min_ratio * recall)
            no_recall = np.where(justext >= o.justext_min_chars, 3, chosen)
            longer = (justext > o.justext_min_ratio * recall) & (self.cover >= o.justext_min_cover)
            unmarked = np.where(has_default & (default >= o.default_page_share * self.page_chars), 1,
                                np.where(skip_justext, chosen, np.where(~has_recall, no_recall,
                                                                        np.where(longer, 3, chosen))))
        return np.where(self.markup & o.markup_fast, marked, unmarked)

    def set_f1(self, picked: np.ndarray, mask: np.ndarray) -> dict[str, float]:
        """F1 per gold set of the pages in ``mask``, each scored by the candidate index in ``picked``."""
        rows = self.scores[picked, np.arange(len(self.pages))]
        out = {}
        for k, name in enumerate(self.sets):
            chosen = rows[mask & (self.set_of == k)]
            if name in SNIPPET_SETS:
                tp, fn, fp = chosen.sum(axis=0)
                precision = tp / (tp + fp) if tp + fp else 0.0
                recall = tp / (tp + fn) if tp + fn else 0.0
                out[name] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            else:
                out[name] = float(chosen[:, 0].mean()) if len(chosen) else 0.0
        return out

    def best_stock(self, mask: np.ndarray) -> dict[str, float]:
        """Per set, the F1 of the best stock trafilatura mode on the pages in ``mask``."""
        scores = [self.set_f1(np.full(len(self.pages), len(MODES) + k), mask) for k in range(len(STOCK))]
        return {name: max(s[name] for s in scores) for name in self.sets}

    def objective(self, options: HtmlOptions, mask: np.ndarray, stock: dict[str, float]) -> float:
        """What the rules are fit for: the mean F1 of the sets, less ``SHORTFALL_WEIGHT`` times the mean
        shortfall below each set's best stock mode (the target is to beat it on every set)."""
        scores = self.set_f1(self.choice(options), mask)
        shortfall = sum(max(0.0, stock[n] - scores[n]) for n in self.sets)
        return (sum(scores.values()) - SHORTFALL_WEIGHT * shortfall) / len(scores)


def folds(pages: list[PageScores]) -> np.ndarray:
    """Each page's fold: pages of a set ordered by a hash of their id, dealt round-robin (stable, balanced)."""
    fold = np.zeros(len(pages), dtype=int)
    for name in {p.set_name for p in pages}:
        members = sorted((hashlib.sha1(p.page_id.encode()).hexdigest(), i) for i, p in enumerate(pages)
                         if p.set_name == name)
        for rank, (_, i) in enumerate(members):
            fold[i] = rank % FOLDS
    return fold


def candidates_for(rules: Iterable[str]) -> list[HtmlOptions]:
    """Every combination of the grid's values for ``rules``; the other rules switched off."""
    on = set(rules)
    fixed: dict[str, float | bool] = {}
    for rule in GRID:
        if rule not in on:
            fixed.update(RULE_OFF[rule])
    axes = [(key, values) for rule in GRID if rule in on for key, values in GRID[rule].items()]
    keys = [key for key, _ in axes]
    return [HtmlOptions(**fixed, **dict(zip(keys, combo, strict=True)))
            for combo in itertools.product(*(values for _, values in axes))]


def fit(arrays: Arrays, rules: Iterable[str], mask: np.ndarray) -> HtmlOptions:
    stock = arrays.best_stock(mask)
    return max(candidates_for(rules), key=lambda options: arrays.objective(options, mask, stock))


def cross_validate(arrays: Arrays, rules: Iterable[str], fold: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Held-out choices for every page, and each fold's held-out objective."""
    picked = np.zeros(len(arrays.pages), dtype=int)
    per_fold = []
    for k in range(FOLDS):
        held = fold == k
        options = fit(arrays, rules, ~held)
        picked[held] = arrays.choice(options)[held]
        per_fold.append(arrays.objective(options, held, arrays.best_stock(held)))
    return picked, per_fold


def check_vectorized(arrays: Arrays, options: Iterable[HtmlOptions]) -> None:
    """The vectorized rules must pick what ``choose`` picks, page for page."""
    placeholders = [_Placeholder(p) for p in arrays.pages]
    for option in options:
        vector = arrays.choice(option)
        scalar = [MODES.index(p.chosen(option)) for p in placeholders]
        same = [vector[i] == s or arrays.length[MODES[s]][i] == arrays.length[MODES[vector[i]]][i]
                for i, s in enumerate(scalar)]
        assert all(same), f"vectorized rules differ from choose() on {same.count(False)} pages for {option}"


def report(pages: list[PageScores]) -> list[str]:
    """Print the rule ablation and the cross-validated table; return the targets not met."""
    arrays = Arrays(pages)
    fold = folds(pages)
    everything = np.ones(len(pages), dtype=bool)
    check_vectorized(arrays, [HtmlOptions(), *candidates_for(GRID)[::97]])
    rules = list(GRID)
    print(f"\ncross-validation: {FOLDS} folds per gold set, {len(pages)} pages; rule ablation "
          "(held-fold gain of the mean F1 when the rule is fit in, vs fit without it)")
    kept = []
    _, with_all = cross_validate(arrays, rules, fold)
    for rule in rules:
        _, without = cross_validate(arrays, [r for r in rules if r != rule], fold)
        gains = [a - b for a, b in zip(with_all, without, strict=True)]
        holds = sum(gains) > 0 and sum(g > 0 for g in gains) > sum(g < 0 for g in gains)
        kept += [rule] if holds else []
        print(f"  {rule:<20} gains per fold " + " ".join(f"{g:+.4f}" for g in gains)
              + f"  mean {sum(gains) / FOLDS:+.4f}  {'kept' if holds else 'DROPPED'}")
    picked, _ = cross_validate(arrays, kept, fold)
    final = fit(arrays, kept, everything)
    defaults = arrays.set_f1(arrays.choice(HtmlOptions()), everything)
    refit = arrays.set_f1(arrays.choice(final), everything)
    cv = arrays.set_f1(picked, everything)
    stock = {name: arrays.set_f1(np.full(len(pages), len(MODES) + k), everything) for k, name in enumerate(STOCK)}
    print(f"  rules kept: {', '.join(kept) or 'none'}; fit on every page: "
          + ", ".join(f"{k}={getattr(final, k)}" for key in kept for k in GRID[key]))
    print(f"\n{'set':<20}" + "".join(f"{n:>16}" for n in STOCK) + f"{'siftlake':>10}{'refit':>8}{'CV':>8}")
    failures = []
    for name in arrays.sets:
        best = max(stock[n][name] for n in STOCK)
        print(f"{name:<20}" + "".join(f"{stock[n][name]:>16.4f}" for n in STOCK)
              + f"{defaults[name]:>10.4f}{refit[name]:>8.4f}{cv[name]:>8.4f}")
        if cv[name] < best:
            failures.append(f"{name}: cross-validated F1 {cv[name]:.4f} < best stock mode {best:.4f}")
    print("(siftlake: the shipped defaults on every page; refit: the kept rules fit on every page; "
          "CV: each page scored with the rules fit on the other folds)")
    return failures

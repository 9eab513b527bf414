"""Quality signals (``q_*``) and a 0..1 ``quality_score`` per document: score, don't decide.

Every document keeps all its signals; which threshold to apply is the reader's choice. The signals
re-implement the published heuristics of Gopher (Rae et al. 2021), C4 (Raffel et al. 2020) and FineWeb
(Penedo et al. 2024) in one pass per document, with language-aware rules so that non-English text is not
penalised: stop words come from a per-language list (``flows/data/stopwords.json``, 24 languages), and
each character of CJK, Thai, Lao, Khmer and Myanmar text counts as one word because those scripts put no
spaces between words.

The score is a logistic regression over bounded transforms of the signals (``features``), trained by
``bench/train_quality.py`` on gold articles versus harvested and synthetic junk from the dev corpora, with
every weight kept on the side the literature gives its signal; the weights ship as data in
``flows/data/quality_model.json``. Everything here is pure Python + numpy: no I/O beyond those two files.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from flows.document import Document

# Scripts written without spaces between words: CJK (kana, ideographs, half-width katakana), Thai, Lao,
# Myanmar, Khmer. Each of their characters counts as one word ("characters as segments").
_WIDE_CLASS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_CJK_CLASS = _WIDE_CLASS + "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff"
# Combining marks that belong inside words (Indic vowel signs, Arabic and Hebrew vowel points): without them
# \w would cut a Hindi or Bengali word into one-letter pieces.
_MARK_CLASS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed"
    "\u0900-\u0963\u0966-\u0dff"  # Indic blocks, minus the danda sentence marks
)
_TOKEN = re.compile(f"[{_CJK_CLASS}]|(?:[^\\W{_CJK_CLASS}]|[{_MARK_CLASS}])+")
_MARKED_WORD = re.compile(f"[\\w{_MARK_CLASS}]+")  # text with combining marks but no CJK
_PLAIN_WORD = re.compile(r"\w+")  # the fast path: most text has neither CJK nor combining marks
_CJK = re.compile(f"[{_CJK_CLASS}]")
_SPECIAL = re.compile(f"[{_CJK_CLASS}{_MARK_CLASS}]")
# CJK characters are twice as wide (and as informative) as Latin letters in a line-length rule.
_WIDE = re.compile(f"[{_WIDE_CLASS}]")
# Sentence end followed by the next word's first letter: shuffled text starts sentences in lower case.
_SENTENCE_START = re.compile(r"[.!?]\s+([^\W\d_])")
# A capitalised short word after a space; a capitalised stop word mid-sentence betrays shuffled text.
_CAP_WORD = re.compile(r" ([A-ZÀ-ÖØ-ÞА-ЯЁ][^\W\d_]{0,9})\b")
# The same words right after sentence punctuation (quotes, dashes, brackets in typographic forms too).
_CAP_AFTER_BOUNDARY = re.compile(
    r"[.!?:;\"()\[\]\-'*|/\u201c\u201d\u201e\u00ab\u00bb\u2039\u203a\u2013\u2014\u2026\u2018\u2019\u2022]"
    + _CAP_WORD.pattern
)
# Includes CJK full stops and brackets, the Devanagari danda, and the Arabic/Urdu question mark and full stop.
_TERMINAL = tuple(".!?\"')" + "\u201d\u2019\u00bb\u3002\uff01\uff1f\u300d\u300f\uff0e\u0964\u0965\u061f\u06d4")
_ELLIPSIS = ("...", "\u2026")
_BULLETS = tuple("-*" + "\u2022\u2013\u2014\u00b7\u2023\u25e6\u25aa\u25ba\u2192")
# C4's line-level policy phrases; its four cookie phrases all contain "cookie", which also reads the
# same in most European languages, so that one substring covers them.
_POLICY = ("terms of use", "privacy policy", "cookie")
_SHORT_LINE_CHARS = 30
# Distinct-word ratio falls with length; measuring it on a fixed window keeps it comparable across documents.
_UNIQUE_WINDOW = 300
_HASH_MULT = np.uint64(1_000_003)
# n-gram hashes keep 60 bits; the top 4 hold n, so one sort groups every n into its own slice.
_LOW_BITS = np.uint64((1 << 60) - 1)
_TAG_SHIFT = np.uint64(60)
_TAGS = {n: np.uint64(n << 60) for n in range(2, 11)}
_DUP_NGRAMS = (5, 6, 7, 8, 9, 10)
_TOP_NGRAMS = (2, 3, 4)

SIGNAL_DOCS: dict[str, str] = {
    # Gopher quality filter
    "q_word_count": "words (letter/digit runs; each CJK/Thai/Lao/Khmer/Myanmar character counts as one); >= 0; "
    "Gopher keeps 50..100000",
    "q_mean_word_length": "mean characters per word; >= 0; Gopher keeps 3..10 (space-delimited scripts, ~1 for "
    "CJK/Thai)",
    "q_symbol_word_ratio": "('#' + '...'/'…' occurrences) per word; >= 0; Gopher keeps <= 0.1",
    "q_bullet_line_frac": "fraction of non-empty lines starting with a bullet (•, -, * ...); 0..1; Gopher keeps <= 0.9",
    "q_ellipsis_line_frac": "fraction of non-empty lines ending in '...' or '…'; 0..1; Gopher keeps <= 0.3",
    "q_alpha_word_frac": "fraction of words that are not purely numeric (contain a letter); 0..1; Gopher keeps >= 0.8",
    "q_stop_word_count": "stop words of the document's language (flows/data/stopwords.json; all lists when "
    "unknown); >= 0; Gopher keeps >= 2",
    "q_stop_word_frac": "fraction of words that are stop words of the language; 0..1; jusText/NeMo use >= 0.30 "
    "per paragraph (English)",
    # Gopher repetition filter
    "q_dup_line_frac": "fraction of non-empty lines that repeat an earlier line; 0..1; Gopher keeps <= 0.30",
    "q_dup_para_frac": "fraction of paragraphs that repeat an earlier paragraph; 0..1; Gopher keeps <= 0.30",
    "q_dup_line_char_frac": "characters in lines that repeat an earlier line / characters in all non-empty lines; "
    "0..1; Gopher keeps <= 0.20",
    "q_dup_para_char_frac": "characters in paragraphs that repeat an earlier one / all paragraph characters; 0..1; "
    "Gopher keeps <= 0.20",
    "q_top_2gram_char_frac": "characters in the most frequent word 2-gram (x its count) / word characters; "
    "0..1; Gopher keeps <= 0.20",
    "q_top_3gram_char_frac": "same for 3-grams; 0..1; Gopher keeps <= 0.18",
    "q_top_4gram_char_frac": "same for 4-grams; 0..1; Gopher keeps <= 0.16",
    "q_dup_5gram_char_frac": "fraction of word characters inside 5-grams that occur more than once; 0..1; "
    "Gopher keeps <= 0.15",
    "q_dup_6gram_char_frac": "same for 6-grams; 0..1; Gopher keeps <= 0.14",
    "q_dup_7gram_char_frac": "same for 7-grams; 0..1; Gopher keeps <= 0.13",
    "q_dup_8gram_char_frac": "same for 8-grams; 0..1; Gopher keeps <= 0.12",
    "q_dup_9gram_char_frac": "same for 9-grams; 0..1; Gopher keeps <= 0.11",
    "q_dup_10gram_char_frac": "same for 10-grams; 0..1; Gopher keeps <= 0.10",
    # C4
    "q_c4_line_keep_frac": "fraction of non-empty lines C4's line rules keep (ends in terminal punctuation, "
    "not '...', >= 3 words, no 'javascript', no policy phrase); 0..1; C4 drops the other lines",
    "q_javascript_line_frac": "fraction of non-empty lines mentioning 'javascript'; 0..1; C4 drops such lines",
    "q_policy_line_frac": "fraction of non-empty lines with a cookie/terms/privacy phrase; 0..1; C4 drops such lines",
    "q_lorem_ipsum": "1 if the text contains 'lorem ipsum', else 0; 0 or 1; C4 drops the document when 1",
    "q_curly_brace_frac": "fraction of characters that are '{' or '}'; 0..1; C4 drops any document with '{' (> 0)",
    # FineWeb
    "q_line_punct_frac": "fraction of non-empty lines ending in terminal punctuation (. ! ? quotes, CJK full stops, "
    "danda, Arabic question mark); 0..1; FineWeb keeps >= 0.12 (C4 keeps only such lines)",
    "q_short_line_frac": "fraction of non-empty lines shorter than 30 characters (CJK characters count 2); 0..1; "
    "FineWeb keeps <= 0.67",
    "q_char_dup_frac": "characters in repeated non-empty lines / all non-newline characters; 0..1; FineWeb keeps "
    "<= 0.01",
    "q_newline_word_ratio": "non-empty lines per word (line breaks per word of single-spaced text); >= 0; "
    "FineWeb keeps <= 0.3",
    # siftlake
    "q_lower_sentence_start_frac": "fraction of sentence ends (. ! ?) followed by a lower-case letter; 0..1; "
    "no literature threshold (siftlake: shuffled word salad is high, prose < 0.2)",
    "q_midsentence_cap_stop_frac": "fraction of capitalised stop words (after a space) that do not follow "
    "sentence punctuation; 0..1; no literature threshold (siftlake: shuffled word salad > 0.5, prose median ~0)",
    "q_digit_char_frac": "fraction of non-space characters in all-digit words; 0..1; no literature threshold "
    "(siftlake: tables/logs are high, prose < 0.05)",
    "q_punct_char_frac": "fraction of non-space characters that are neither letters nor digits; 0..1; no "
    "literature threshold (siftlake: prose ~0.03, code/logs/markup higher)",
    "q_unique_word_frac": "distinct lower-cased words / words, over the first 300 words; 0..1; no literature "
    "threshold (RedPajama frac_unique_words, spam and repetition are low, prose ~0.5-0.8)",
    # language identification
    "q_lang_score": "fastText lid.176's probability for the language (given as input; 0 when unknown); 0..1; "
    "FineWeb keeps >= 0.65",
}

SIGNAL_NAMES: tuple[str, ...] = tuple(SIGNAL_DOCS)


class QualityConfig(BaseModel):
    """Settings of the quality stage. Scoring never drops a document; the cut is only for reports."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    default_cut: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="quality_score at or above which a document counts as 'good' in run summaries and the "
        "README's curated-subset query; informational only (score, don't decide).",
    )


# ---------------------------------------------------------------------------------------------- data


@lru_cache(maxsize=1)
def _stopwords() -> dict[str, frozenset[str]]:
    raw = resources.files("flows").joinpath("data/stopwords.json").read_text(encoding="utf-8")
    lists: dict[str, list[str]] = json.loads(raw)
    return {lang: frozenset(words) for lang, words in lists.items()}


@lru_cache(maxsize=1)
def _all_stopwords() -> frozenset[str]:
    # Unknown language: any list may apply, so use the union (lenient rather than English-only).
    return frozenset().union(*_stopwords().values())


def stopwords_for(lang: str | None) -> frozenset[str]:
    """The stop-word set used for ``lang`` (the union of all lists when unknown or unlisted)."""
    return _stopwords().get(lang or "", _all_stopwords())


@lru_cache(maxsize=1)
def _model() -> dict[str, Any]:
    raw = resources.files("flows").joinpath("data/quality_model.json").read_text(encoding="utf-8")
    model: dict[str, Any] = json.loads(raw)
    if model.get("features") != list(FEATURE_NAMES):
        # The weights only mean something for the features they were fitted on.
        raise RuntimeError(
            "flows/data/quality_model.json does not match flows.quality features; "
            "rebuild it with `python bench/train_quality.py`"
        )
    return model


# ------------------------------------------------------------------------------------------- signals


def _frac(part: float, whole: float) -> float:
    return float(part) / whole if whole > 0 else 0.0


def _enough_words(line: str, has_cjk: bool) -> bool:
    """C4's ">= 3 words" line rule; CJK lines are counted in characters (no spaces to split on)."""
    if has_cjk and _CJK.search(line):
        return len(_TOKEN.findall(line)) >= 3
    return len(line.split(maxsplit=3)) >= 3


def _phrase_lines(lines: list[str], low_text: str, phrases: tuple[str, ...]) -> list[bool]:
    """Which lines contain one of ``phrases`` (case-insensitive); skips the scan when the text has none."""
    if not any(p in low_text for p in phrases):
        return [False] * len(lines)
    return [any(p in line.lower() for p in phrases) for line in lines]


def _line_signals(lines: list[str], low_text: str, has_cjk: bool) -> dict[str, float]:
    """Per-line Gopher/C4/FineWeb rules over the non-empty, stripped lines."""
    n = len(lines)
    js = _phrase_lines(lines, low_text, ("javascript",))
    policy = _phrase_lines(lines, low_text, _POLICY)
    terminal = [line.endswith(_TERMINAL) for line in lines]
    ellipsis = [line.endswith(_ELLIPSIS) for line in lines]
    widths = [len(line) + len(_WIDE.findall(line)) for line in lines] if has_cjk else list(map(len, lines))
    c4_keep = sum(
        term and not ell and not j and not pol and _enough_words(line, has_cjk)
        for line, term, ell, j, pol in zip(lines, terminal, ellipsis, js, policy, strict=True)
    )
    return {
        "q_bullet_line_frac": _frac(sum(line.startswith(_BULLETS) for line in lines), n),
        "q_ellipsis_line_frac": _frac(sum(ellipsis), n),
        "q_c4_line_keep_frac": _frac(c4_keep, n),
        "q_javascript_line_frac": _frac(sum(js), n),
        "q_policy_line_frac": _frac(sum(policy), n),
        "q_line_punct_frac": _frac(sum(terminal), n),
        "q_short_line_frac": _frac(sum(w < _SHORT_LINE_CHARS for w in widths), n),
    }


def _dup_units(units: list[str]) -> tuple[int, int]:
    """Count of units equal to an earlier one, and their characters (Gopher/FineWeb duplicate rules)."""
    seen: set[str] = set()
    dups = dup_chars = 0
    for unit in units:
        if unit in seen:
            dups += 1
            dup_chars += len(unit)
        else:
            seen.add(unit)
    return dups, dup_chars


def _repetition_signals(text: str, lines: list[str]) -> dict[str, float]:
    paras = [p.strip() for p in text.split("\n\n") if p.strip()]
    dup_lines, dup_line_chars = _dup_units(lines)
    dup_paras, dup_para_chars = _dup_units(paras)
    line_chars = sum(map(len, lines))
    para_chars = sum(map(len, paras))
    non_newline = len(text) - text.count("\n")
    return {
        "q_dup_line_frac": _frac(dup_lines, len(lines)),
        "q_dup_para_frac": _frac(dup_paras, len(paras)),
        "q_dup_line_char_frac": _frac(dup_line_chars, line_chars),
        "q_dup_para_char_frac": _frac(dup_para_chars, para_chars),
        "q_char_dup_frac": min(1.0, _frac(dup_line_chars, non_newline)),
    }


def _ngram_hashes(ids: np.ndarray, n_max: int) -> list[np.ndarray]:
    """Rolling hashes of all word n-grams, n = 1..n_max (index n-1); uint64 arithmetic wraps on purpose."""
    hashes = [ids]
    current = ids
    for n in range(2, n_max + 1):
        current = current[:-1] * _HASH_MULT + ids[n - 1 :]
        hashes.append(current)
    return hashes


def _runs(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and lengths of the runs of equal values in a sorted array."""
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return starts, np.diff(np.append(starts, ordered.size))


def _in_sorted(values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Mask of ``values`` that are in the sorted array ``wanted``."""
    if wanted.size == 0:
        return np.zeros(values.size, dtype=bool)
    if wanted.size == 1:  # the usual case for a top n-gram; a comparison beats a binary search
        single: np.ndarray = values == wanted[0]
        return single
    index = np.minimum(np.searchsorted(wanted, values), wanted.size - 1)
    matched: np.ndarray = wanted[index] == values
    return matched


def _ngram_signals(words: list[str]) -> dict[str, float]:
    """Gopher's top-n-gram and duplicate-n-gram character fractions, vectorised with numpy.

    n = 2..5 are hashed, tagged with n in the top bits and sorted together in one ``np.sort`` (numpy's
    per-call overhead, not arithmetic, dominates on article-length text). An n-gram can only repeat where
    the two (n-1)-grams inside it repeat, so n = 6..10 only look at those few candidates and stop early.
    """
    out = {f"q_top_{n}gram_char_frac": 0.0 for n in _TOP_NGRAMS}
    out |= {f"q_dup_{n}gram_char_frac": 0.0 for n in _DUP_NGRAMS}
    count = len(words)
    if count < 2:
        return out
    # Python's str hash is only used for equality inside one document, so its per-process salt is harmless
    # (ties below are broken by position, never by hash order).
    ids = np.fromiter(map(hash, words), dtype=np.int64, count=count).view(np.uint64)
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=count)
    cumulative = np.concatenate(([0], np.cumsum(lengths)))
    total = float(cumulative[-1])
    if total <= 0:
        return out
    hashes = _ngram_hashes(ids, min(count, _DUP_NGRAMS[-1]))
    grams = [(hashes[n - 1] & _LOW_BITS) | _TAGS[n] for n in range(2, min(count, 5) + 1)]
    ordered = np.sort(np.concatenate(grams))
    starts, all_runs = _runs(ordered)
    all_values = ordered[starts]
    tags = all_values >> _TAG_SHIFT
    repeated = np.zeros(0, dtype=bool)
    for n, gram in enumerate(grams, start=2):
        mine = tags == n
        values, runs = all_values[mine], all_runs[mine]
        if n in _TOP_NGRAMS:
            out[f"q_top_{n}gram_char_frac"] = _top_ngram_frac(gram, values, runs, cumulative, n, total)
        else:
            repeated = _in_sorted(gram, values[runs > 1])
            out[f"q_dup_{n}gram_char_frac"] = _covered_frac(repeated, lengths, n, total)
    for n in range(6, len(hashes) + 1):
        repeated = _repeated_among_candidates(hashes[n - 1], repeated[:-1] & repeated[1:])
        if not repeated.any():
            break
        out[f"q_dup_{n}gram_char_frac"] = _covered_frac(repeated, lengths, n, total)
    return out


def _repeated_among_candidates(gram: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Which n-grams occur more than once, checking only candidate positions (all others are unique)."""
    repeated = np.zeros(gram.size, dtype=bool)
    where = np.flatnonzero(candidates)
    if where.size > 1:
        chosen = gram[where]
        ordered = np.sort(chosen)
        starts, runs = _runs(ordered)
        values = ordered[starts][runs > 1]
        if values.size:
            repeated[where] = _in_sorted(chosen, values)
    return repeated


def _top_ngram_frac(
    gram: np.ndarray, values: np.ndarray, runs: np.ndarray, cumulative: np.ndarray, n: int, total: float
) -> float:
    """Characters of the most frequent n-gram times its count, over all word characters.

    Ties go to the n-gram that occurs first, so the value never depends on hash order.
    """
    top = int(runs.max())
    if top < 2:
        return 0.0
    start = int(_in_sorted(gram, values[runs == top]).argmax())
    chars = float(cumulative[start + n] - cumulative[start])
    return min(1.0, chars * top / total)


def _covered_frac(repeated: np.ndarray, lengths: np.ndarray, n: int, total: float) -> float:
    """Characters of words covered by a repeated n-gram (``repeated`` marks their starts), over all."""
    if not repeated.any():
        return 0.0
    starts = repeated.astype(np.int64)
    # Mark every word covered by a repeated n-gram once: +1 at each start, -1 just past its end.
    delta = np.zeros(lengths.size + 1, dtype=np.int64)
    delta[: starts.size] += starts
    delta[n : n + starts.size] -= starts
    covered = np.cumsum(delta[:-1]) > 0
    return float(lengths[covered].sum()) / total


def _word_signals(text: str, words: list[str], stops: frozenset[str]) -> dict[str, float]:
    count = len(words)
    word_chars = sum(map(len, words))
    numeric = list(filter(str.isnumeric, words))
    stop_count = sum(map(stops.__contains__, words))
    symbols = text.count("#") + text.count("...") + text.count("…")
    # Tokens are \w runs, so every other non-space character is punctuation or a symbol.
    non_space = len(text) - text.count(" ") - text.count("\n") - text.count("\t")
    return {
        "q_word_count": float(count),
        "q_mean_word_length": _frac(word_chars, count),
        "q_symbol_word_ratio": _frac(symbols, count),
        "q_alpha_word_frac": _frac(count - len(numeric), count),
        "q_stop_word_count": float(stop_count),
        "q_stop_word_frac": _frac(stop_count, count),
        "q_unique_word_frac": _frac(len(set(words[:_UNIQUE_WINDOW])), min(count, _UNIQUE_WINDOW)),
        "q_digit_char_frac": min(1.0, _frac(sum(map(len, numeric)), non_space)),
        "q_punct_char_frac": min(1.0, max(0.0, _frac(non_space - word_chars, non_space))),
    }


def _midsentence_cap_stops(text: str, stops: frozenset[str]) -> float:
    """Capitalised stop words ("The", "Die", "Le") start sentences in prose, but land anywhere in word salad."""
    after_space = _CAP_WORD.findall(text)
    after_boundary = _CAP_AFTER_BOUNDARY.findall(text)
    seen = sum(map(stops.__contains__, map(str.lower, after_space)))
    starts = sum(map(stops.__contains__, map(str.lower, after_boundary)))
    return _frac(seen - starts, seen)


def _text_signals(text: str, low_text: str, stops: frozenset[str]) -> dict[str, float]:
    starts = _SENTENCE_START.findall(text)
    return {
        "q_lower_sentence_start_frac": _frac(sum(map(str.islower, starts)), len(starts)),
        "q_midsentence_cap_stop_frac": _midsentence_cap_stops(text, stops),
        "q_lorem_ipsum": float("lorem ipsum" in low_text),
        "q_curly_brace_frac": _frac(text.count("{") + text.count("}"), len(text)),
    }


def quality_signals(text: str, lang: str | None, lang_score: float | None) -> dict[str, float]:
    """All ``q_*`` signals of one document, in ``SIGNAL_NAMES`` order; every value finite and in range."""
    low_text = text.lower()
    # One scan picks the tokenizer. On the lower-cased text: lower() can create marks ("İ" -> "i" + U+0307).
    special = _SPECIAL.search(low_text) is not None
    has_cjk = special and _CJK.search(low_text) is not None
    lines = [s for s in (line.strip() for line in text.split("\n")) if s]
    words = (_TOKEN if has_cjk else _MARKED_WORD if special else _PLAIN_WORD).findall(low_text)
    stops = stopwords_for(lang)
    signals = _word_signals(text, words, stops)
    signals |= _line_signals(lines, low_text, has_cjk)
    signals |= _repetition_signals(text, lines)
    signals |= _ngram_signals(words)
    signals |= _text_signals(text, low_text, stops)
    signals["q_newline_word_ratio"] = _frac(len(lines), len(words))
    score = lang_score if lang_score is not None and math.isfinite(lang_score) else 0.0
    signals["q_lang_score"] = min(1.0, max(0.0, float(score)))
    return {name: signals[name] for name in SIGNAL_NAMES}


# --------------------------------------------------------------------------------------------- score


# Model inputs: (name, expected sign). +1: higher is better text, -1: higher is worse, 0: either. Training
# keeps each weight on its literature side (or at zero), so the score stays explainable and no rare
# feature (bullets, say) can turn into a bonus that junk could exploit.
FEATURE_SIGNS: dict[str, int] = {
    "log_words": 1,
    "short_doc": -1,
    "word_length_deviation": -1,
    "symbol_word_ratio": -1,
    "bullet_lines": -1,
    "ellipsis_lines": -1,
    "non_alpha_words": -1,
    "stop_word_frac": 1,
    "has_two_stop_words": 1,
    "dup_lines": -1,
    "dup_para_chars": -1,
    "top_2gram": -1,
    "top_4gram": -1,
    "dup_5gram": -1,
    "dup_10gram": -1,
    "mostly_dup_10gram": -1,
    "mostly_dup_lines": -1,
    "c4_kept_lines": 1,
    "javascript_lines": -1,
    "policy_lines": -1,
    "lorem_ipsum": -1,
    "curly_braces": -1,
    "punct_lines": 1,
    "short_lines": -1,
    "char_dup": -1,
    "log_lines_per_word": -1,
    "mostly_short_lines": -1,
    "lower_sentence_starts": -1,
    "midsentence_cap_stops": -1,
    "salad_lower_starts": -1,
    "salad_cap_stops": -1,
    "list_like_lines": -1,
    "digits": -1,
    "punctuation": -1,
    "unique_words": 0,
    "low_unique_words": -1,
    "lang_score": 1,
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURE_SIGNS)
FEATURE_COUNT = len(FEATURE_NAMES)


def features(signals: Mapping[str, float], lang: str | None) -> list[float]:
    """Model inputs from signals, in ``FEATURE_NAMES`` order: bounded transforms so no signal dominates.

    Shared by ``quality_score`` and ``bench/train_quality.py`` so training and scoring agree.
    """
    del lang  # language is already folded into the signals (stop-word list, CJK word rule)
    s = signals
    words = s["q_word_count"]
    cjk_like = s["q_mean_word_length"] < 2.0 and words > 0  # CJK text: Gopher's word length rule n/a
    mean_len = 5.0 if cjk_like else s["q_mean_word_length"]
    return [
        math.log1p(min(words, 5000.0)),
        max(0.0, math.log(50.0 / words)) if words > 0 else math.log(50.0),
        abs(math.log(max(mean_len, 0.5) / 5.0)),
        min(s["q_symbol_word_ratio"], 1.0),
        s["q_bullet_line_frac"],
        s["q_ellipsis_line_frac"],
        1.0 - s["q_alpha_word_frac"],
        s["q_stop_word_frac"],
        float(s["q_stop_word_count"] >= 2),
        s["q_dup_line_frac"],
        s["q_dup_para_char_frac"],
        s["q_top_2gram_char_frac"],
        s["q_top_4gram_char_frac"],
        s["q_dup_5gram_char_frac"],
        s["q_dup_10gram_char_frac"],
        # Whole documents made of repeats sit near 1; articles with a repeated passage stay below ~0.5.
        max(0.0, s["q_dup_10gram_char_frac"] - 0.8) * 5.0,
        max(0.0, s["q_dup_line_frac"] - 0.5) * 2.0,
        s["q_c4_line_keep_frac"],
        s["q_javascript_line_frac"],
        s["q_policy_line_frac"],
        s["q_lorem_ipsum"],
        min(s["q_curly_brace_frac"] * 100.0, 1.0),
        s["q_line_punct_frac"],
        s["q_short_line_frac"],
        min(s["q_char_dup_frac"] * 10.0, 1.0),
        # Menus and lists have one line per 1-3 words, prose one per 15-100: the log spreads that range.
        math.log(min(max(s["q_newline_word_ratio"], 0.005), 1.0)),
        max(0.0, s["q_short_line_frac"] - 0.5),
        s["q_lower_sentence_start_frac"],
        s["q_midsentence_cap_stop_frac"],
        # Hinges past the range prose occupies, so junk far outside it can weigh more than prose inside it.
        max(0.0, s["q_lower_sentence_start_frac"] - 0.3),
        max(0.0, s["q_midsentence_cap_stop_frac"] - 0.5),
        max(0.0, math.log(max(s["q_newline_word_ratio"], 0.15) / 0.15)),
        min(s["q_digit_char_frac"] * 5.0, 1.0),
        min(s["q_punct_char_frac"] * 5.0, 1.0),
        s["q_unique_word_frac"],
        max(0.0, 0.35 - s["q_unique_word_frac"]),
        s["q_lang_score"],
    ]


def quality_score(signals: Mapping[str, float], lang: str | None) -> float:
    """0..1, higher is better: the shipped logistic regression applied to ``features(signals, lang)``."""
    model = _model()
    x = np.asarray(features(signals, lang), dtype=np.float64)
    z = float(np.dot((x - model["mean"]) / model["scale"], model["weights"])) + float(model["bias"])
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def score_batch(docs: list[Document], config: QualityConfig) -> None:
    """Set ``doc.signals`` (every name in ``SIGNAL_NAMES``) and ``doc.quality_score`` in place."""
    del config  # scoring is independent of the cut; the cut is for reports only
    for doc in docs:
        doc.signals = quality_signals(doc.text, doc.lang, doc.lang_score)
        doc.quality_score = quality_score(doc.signals, doc.lang)


def feature_contributions(signals: Mapping[str, float], lang: str | None) -> dict[str, float]:
    """Each model input's share of the score's logit (weight x standardized feature), by ``FEATURE_NAMES``:
    the most negative ones are what pulls a document's score down (the lake report's "low-score drivers")."""
    model = _model()
    x = np.asarray(features(signals, lang), dtype=np.float64)
    parts = (x - model["mean"]) / model["scale"] * np.asarray(model["weights"], dtype=np.float64)
    return dict(zip(FEATURE_NAMES, (float(p) for p in parts), strict=True))

"""Quality signals: the documented ``q_*`` columns, language-aware words, Gopher's n-gram definitions."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.quality import (
    SIGNAL_DOCS,
    SIGNAL_NAMES,
    quality_score,
    quality_signals,
    stopwords_for,
)
from tests.quality.texts import JAPANESE, signals_of


def test_signal_names_are_documented_q_columns_in_fixed_order() -> None:
    assert tuple(SIGNAL_DOCS) == SIGNAL_NAMES
    assert all(name.startswith("q_") for name in SIGNAL_NAMES)
    assert "q_lang_score" in SIGNAL_NAMES
    assert list(quality_signals("Some text here.", "en", 0.9)) == list(SIGNAL_NAMES)


def test_cjk_words_are_counted_per_character() -> None:
    signals = signals_of(JAPANESE)
    assert signals["q_word_count"] > 150
    assert signals["q_stop_word_frac"] > 0.1


def test_indic_words_keep_their_vowel_signs() -> None:
    # Without the combining marks a Hindi word falls apart into one-letter pieces (mean length ~1.5).
    signals = quality_signals("भारत की राजधानी नई दिल्ली है और यह एक बड़ा शहर है।", "hi", 1.0)
    assert signals["q_mean_word_length"] >= 2.5
    assert signals["q_line_punct_frac"] == 1.0  # the danda ends a sentence


def test_c4_markers_are_flagged() -> None:
    signals = signals_of("Lorem ipsum dolor sit amet.\nPlease enable JavaScript.\nWe use cookies. {x: 1}")
    assert signals["q_lorem_ipsum"] == 1.0
    assert signals["q_javascript_line_frac"] > 0
    assert signals["q_policy_line_frac"] > 0
    assert signals["q_curly_brace_frac"] > 0


def _documented_range(name: str) -> tuple[float, float]:
    # Every doc line reads "meaning; range; literature threshold", the README table is built from it.
    parts = SIGNAL_DOCS[name].split("; ")
    assert len(parts) >= 3, f"{name}: doc is not 'meaning; range; threshold'"
    ranges = {"0..1": (0.0, 1.0), "0 or 1": (0.0, 1.0), ">= 0": (0.0, math.inf)}
    assert parts[-2] in ranges, f"{name}: unknown range {parts[-2]!r}"
    return ranges[parts[-2]]


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(max_size=400) | st.text(alphabet=" \n.!?#-•…{}abcXYZ語の", max_size=300),
    lang=st.sampled_from([None, "en", "de", "ja", "zh", "xx"]),
    lang_score=st.none() | st.floats(allow_nan=True, allow_infinity=True),
)
def test_any_text_gives_finite_in_range_signals_and_a_0_1_score(
    text: str, lang: str | None, lang_score: float | None
) -> None:
    signals = quality_signals(text, lang, lang_score)
    for name, value in signals.items():
        low, high = _documented_range(name)
        assert math.isfinite(value) and low <= value <= high, (name, value)
    assert 0.0 <= quality_score(signals, lang) <= 1.0


def _reference_ngram_fracs(words: list[str], n: int) -> tuple[float, float]:
    """Gopher's definitions, written the slow and obvious way: (top n-gram char frac, dup n-gram char frac)."""
    total = sum(map(len, words))
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    counts = Counter(grams)
    if not grams or total == 0:
        return 0.0, 0.0
    top_count = max(counts.values())
    first_top = next(g for g in grams if counts[g] == top_count)
    top = min(1.0, sum(map(len, first_top)) * top_count / total) if top_count > 1 else 0.0
    covered = [False] * len(words)
    for i, gram in enumerate(grams):
        if counts[gram] > 1:
            covered[i : i + n] = [True] * n
    dup = sum(len(w) for w, c in zip(words, covered, strict=True) if c) / total
    return top, dup


@settings(max_examples=200, deadline=None)
@given(words=st.lists(st.sampled_from(["a", "bb", "ccc", "the", "of", "dddd"]), max_size=80))
def test_ngram_signals_match_the_gopher_definitions(words: list[str]) -> None:
    signals = quality_signals(" ".join(words), "en", 1.0)
    for n in (2, 3, 4):
        assert signals[f"q_top_{n}gram_char_frac"] == pytest.approx(_reference_ngram_fracs(words, n)[0])
    for n in (5, 6, 7, 8, 9, 10):
        assert signals[f"q_dup_{n}gram_char_frac"] == pytest.approx(_reference_ngram_fracs(words, n)[1])


def test_stop_word_lists_ship_for_common_languages() -> None:
    for lang in ("en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "sv", "tr", "ja", "zh", "ko", "ar"):
        assert len(stopwords_for(lang)) >= 25, lang
    assert stopwords_for("xx") >= stopwords_for("en")  # unknown language: every list applies

"""Quality signals and score: what a user choosing a corpus by ``quality_score`` and ``q_*`` relies on."""

from __future__ import annotations

import base64
import json
import math
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from flows.document import Document
from flows.language import detect_language
from flows.quality import (
    FEATURE_NAMES,
    SIGNAL_DOCS,
    SIGNAL_NAMES,
    QualityConfig,
    quality_score,
    quality_signals,
    score_batch,
    stopwords_for,
)

SEEDS = sorted((Path(__file__).resolve().parent.parent / "seeds").glob("*.txt"))
CUT = QualityConfig().default_cut

GERMAN = """Die Stadt will in den kommenden Jahren deutlich mehr Geld in den Ausbau der Radwege investieren.

Nach Angaben der Verwaltung sollen bis zum Jahr 2030 insgesamt rund 40 Kilometer neue Wege entstehen, \
die vor allem die äußeren Stadtteile besser mit dem Zentrum verbinden. Der Gemeinderat hatte den Plan am \
Dienstagabend mit großer Mehrheit beschlossen.

Kritik kam von den Einzelhändlern in der Innenstadt. Sie befürchten, dass durch den Wegfall von Parkplätzen \
weniger Kunden mit dem Auto kommen. Die Verwaltung verweist dagegen auf Erfahrungen aus anderen Städten, in \
denen die Umsätze nach dem Umbau sogar gestiegen seien.

Ein erster Abschnitt soll bereits im Frühjahr fertig werden. Die Kosten für das gesamte Projekt werden auf \
etwa 25 Millionen Euro geschätzt, von denen das Land einen großen Teil übernehmen will."""

FRENCH = """Le gouvernement a présenté mercredi un projet de loi destiné à simplifier les démarches des petites \
entreprises, une promesse faite depuis plusieurs années par le président.

Selon le ministre de l'Économie, le texte doit permettre de réduire le nombre de formulaires à remplir et \
de raccourcir les délais de paiement des factures. Les organisations patronales ont salué une avancée, tout \
en regrettant que certaines mesures ne s'appliquent qu'à partir de 2026.

Les syndicats, de leur côté, craignent que ces changements se fassent au détriment de la protection des \
salariés. Le texte sera examiné à l'Assemblée nationale au début du mois prochain, avant d'être transmis \
au Sénat pour une seconde lecture."""

JAPANESE = """市は来年度から、市内すべての小学校で給食の無償化を始めると発表した。

市長は記者会見で、物価の上昇が続くなかで子育て世帯の負担を少しでも軽くしたいと説明した。\
必要な費用は年間およそ十二億円で、国の交付金と市の基金を使ってまかなうという。

保護者からは歓迎する声が多く聞かれた一方で、財源が長く続くのかを心配する意見もあった。\
市は今後、中学校への拡大についても検討を進める方針だ。"""


def _signals(text: str) -> dict[str, float]:
    lang, conf = detect_language(text)
    return quality_signals(text, lang, conf)


def _score(text: str) -> float:
    lang, conf = detect_language(text)
    return quality_score(quality_signals(text, lang, conf), lang)


def test_signal_names_are_documented_q_columns_in_fixed_order() -> None:
    assert tuple(SIGNAL_DOCS) == SIGNAL_NAMES
    assert all(name.startswith("q_") for name in SIGNAL_NAMES)
    assert "q_lang_score" in SIGNAL_NAMES
    assert list(quality_signals("Some text here.", "en", 0.9)) == list(SIGNAL_NAMES)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.name)
def test_raw_seed_articles_score_above_the_default_cut(seed: Path) -> None:
    assert _score(seed.read_text(encoding="utf-8")) >= CUT


@pytest.mark.parametrize("text", [GERMAN, FRENCH, JAPANESE], ids=["de", "fr", "ja"])
def test_good_non_english_articles_score_above_the_cut(text: str) -> None:
    assert _score(text) >= CUT


def test_cjk_words_are_counted_per_character() -> None:
    signals = _signals(JAPANESE)
    assert signals["q_word_count"] > 150
    assert signals["q_stop_word_frac"] > 0.1


def test_indic_words_keep_their_vowel_signs() -> None:
    # Without the combining marks a Hindi word falls apart into one-letter pieces (mean length ~1.5).
    signals = quality_signals("भारत की राजधानी नई दिल्ली है और यह एक बड़ा शहर है।", "hi", 1.0)
    assert signals["q_mean_word_length"] >= 2.5
    assert signals["q_line_punct_frac"] == 1.0  # the danda ends a sentence


def test_repeated_sentence_scores_below_the_cut() -> None:
    text = "\n\n".join(["Click here to get the best deals on cheap flights today."] * 30)
    signals = _signals(text)
    assert signals["q_dup_line_frac"] > 0.9
    assert _score(text) < CUT


def test_shuffled_word_salad_scores_below_the_article() -> None:
    article = SEEDS[1].read_text(encoding="utf-8")
    words = article.split()
    random.Random(1).shuffle(words)
    salad = " ".join(words)
    assert _score(salad) < CUT <= _score(article)


@pytest.mark.parametrize(
    "junk",
    [
        base64.b64encode(bytes(range(256)) * 8).decode(),
        "\n".join(f"2024-01-0{i % 9 + 1} 12:00:{i % 60:02d} INFO GET /api/items?id={i} 200 {i}ms" for i in range(60)),
        "\n".join(["Home", "News", "Sport", "Weather", "Contact us", "About", "Privacy Policy", "Login"] * 3),
        "\n".join(" ".join(str((i * 37 + j * 11) % 1000) for j in range(6)) for i in range(40)),
        "Breaking news today",
    ],
    ids=["base64", "log", "navigation", "number_table", "fragment"],
)
def test_common_junk_scores_below_the_cut(junk: str) -> None:
    assert _score(junk) < CUT


def test_c4_markers_are_flagged() -> None:
    signals = _signals("Lorem ipsum dolor sit amet.\nPlease enable JavaScript.\nWe use cookies. {x: 1}")
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


def test_score_batch_sets_every_signal_and_the_score() -> None:
    lang, conf = detect_language(GERMAN)
    docs = [Document(doc_id="d1", source_uri="a.txt", text=GERMAN, kind="text", lang=lang, lang_score=conf)]
    score_batch(docs, QualityConfig())
    assert set(docs[0].signals) == set(SIGNAL_NAMES)
    assert all(isinstance(v, float) for v in docs[0].signals.values())
    assert docs[0].signals["q_lang_score"] == pytest.approx(conf)
    assert docs[0].quality_score >= CUT


def test_shipped_model_matches_the_features() -> None:
    model = json.loads((Path(__file__).resolve().parent.parent / "flows/data/quality_model.json").read_text())
    assert model["features"] == list(FEATURE_NAMES)
    assert len(model["weights"]) == len(model["mean"]) == len(model["scale"]) == len(FEATURE_NAMES)


def test_stop_word_lists_ship_for_common_languages() -> None:
    for lang in ("en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "sv", "tr", "ja", "zh", "ko", "ar"):
        assert len(stopwords_for(lang)) >= 25, lang
    assert stopwords_for("xx") >= stopwords_for("en")  # unknown language: every list applies


def test_config_is_frozen_and_strict() -> None:
    config = QualityConfig()
    assert config.default_cut == 0.5
    with pytest.raises(ValidationError):
        QualityConfig(cut=0.3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        config.default_cut = 0.1  # type: ignore[misc]

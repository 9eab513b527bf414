"""The quality score: good articles in several languages above the cut, common junk below it, the shipped model."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from flows.document import Document
from flows.language import detect_language
from flows.quality import (
    FEATURE_NAMES,
    SIGNAL_NAMES,
    QualityConfig,
    score_batch,
)
from tests.quality.texts import FRENCH, GERMAN, JAPANESE, SEEDS, score_of, signals_of

CUT = QualityConfig().default_cut


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.name)
def test_raw_seed_articles_score_above_the_default_cut(seed: Path) -> None:
    assert score_of(seed.read_text(encoding="utf-8")) >= CUT


@pytest.mark.parametrize("text", [GERMAN, FRENCH, JAPANESE], ids=["de", "fr", "ja"])
def test_good_non_english_articles_score_above_the_cut(text: str) -> None:
    assert score_of(text) >= CUT


def test_repeated_sentence_scores_below_the_cut() -> None:
    text = "\n\n".join(["Click here to get the best deals on cheap flights today."] * 30)
    signals = signals_of(text)
    assert signals["q_dup_line_frac"] > 0.9
    assert score_of(text) < CUT


def test_shuffled_word_salad_scores_below_the_article() -> None:
    article = SEEDS[1].read_text(encoding="utf-8")
    words = article.split()
    random.Random(1).shuffle(words)
    salad = " ".join(words)
    assert score_of(salad) < CUT <= score_of(article)


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
    assert score_of(junk) < CUT


def test_score_batch_sets_every_signal_and_the_score() -> None:
    lang, conf = detect_language(GERMAN)
    docs = [Document(doc_id="d1", source_uri="a.txt", text=GERMAN, kind="text", lang=lang, lang_score=conf)]
    score_batch(docs, QualityConfig())
    assert set(docs[0].signals) == set(SIGNAL_NAMES)
    assert all(isinstance(v, float) for v in docs[0].signals.values())
    assert docs[0].signals["q_lang_score"] == pytest.approx(conf)
    assert docs[0].quality_score >= CUT


def test_shipped_model_matches_the_features() -> None:
    model = json.loads((Path(__file__).resolve().parents[2] / "flows/data/quality_model.json").read_text())
    assert model["features"] == list(FEATURE_NAMES)
    assert len(model["weights"]) == len(model["mean"]) == len(model["scale"]) == len(FEATURE_NAMES)

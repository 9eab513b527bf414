"""The 0..1 ``quality_score``: a logistic regression over bounded transforms of the signals (``features``).

The weights are trained by ``tools/train_quality.py`` on gold articles versus harvested and synthetic junk
from the dev corpora, with every weight kept on the side the literature gives its signal; they ship as
data in ``flows/data/quality_model.json``. ``score_batch`` is the stage: signals and score per document.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from flows.document import Document
from flows.quality.config import QualityConfig
from flows.quality.signals import quality_signals

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

    Shared by ``quality_score`` and ``tools/train_quality.py`` so training and scoring agree.
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


@lru_cache(maxsize=1)
def _model() -> dict[str, Any]:
    """The shipped model (``flows/data/quality_model.json``), checked against the features it was fit on."""
    raw = resources.files("flows").joinpath("data/quality_model.json").read_text(encoding="utf-8")
    model: dict[str, Any] = json.loads(raw)
    if model.get("features") != list(FEATURE_NAMES):
        # The weights only mean something for the features they were fitted on.
        raise RuntimeError(
            "flows/data/quality_model.json does not match flows.quality features; "
            "rebuild it with `python -m tools.train_quality`"
        )
    return model


def quality_score(signals: Mapping[str, float], lang: str | None) -> float:
    """0..1, higher is better: the shipped logistic regression applied to ``features(signals, lang)``."""
    model = _model()
    z = float(np.dot(_standardized(signals, lang), model["weights"])) + float(model["bias"])
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def _standardized(signals: Mapping[str, float], lang: str | None) -> np.ndarray:
    model = _model()
    x = np.asarray(features(signals, lang), dtype=np.float64)
    standardized: np.ndarray = (x - model["mean"]) / model["scale"]
    return standardized


def feature_contributions(signals: Mapping[str, float], lang: str | None) -> dict[str, float]:
    """Each model input's share of the score's logit, by ``FEATURE_NAMES``: the most negative ones are what
    pulls a document's score down (the lake report's "low-score drivers")."""
    parts = _standardized(signals, lang) * np.asarray(_model()["weights"], dtype=np.float64)
    return dict(zip(FEATURE_NAMES, (float(p) for p in parts), strict=True))


def score_batch(docs: list[Document], config: QualityConfig) -> None:
    """Set ``doc.signals`` (every name in ``SIGNAL_NAMES``) and ``doc.quality_score`` in place."""
    del config  # scoring is independent of the cut; the cut is for reports only
    for doc in docs:
        doc.signals = quality_signals(doc.text, doc.lang, doc.lang_score)
        doc.quality_score = quality_score(doc.signals, doc.lang)

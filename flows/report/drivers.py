"""Why documents score low: for a sample of low-scored documents, the model input that pulls each one's
score down the most (``flows.quality.feature_contributions``), counted over the sample."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from flows.quality import feature_contributions

FEATURE_SIGNALS: dict[str, tuple[str, str]] = {
    "log_words": ("q_word_count", "few words"),
    "short_doc": ("q_word_count", "short document (under 50 words)"),
    "word_length_deviation": ("q_mean_word_length", "unusual mean word length"),
    "symbol_word_ratio": ("q_symbol_word_ratio", "many # and ellipsis symbols"),
    "bullet_lines": ("q_bullet_line_frac", "bullet lines"),
    "ellipsis_lines": ("q_ellipsis_line_frac", "lines ending in an ellipsis"),
    "non_alpha_words": ("q_alpha_word_frac", "numeric words"),
    "stop_word_frac": ("q_stop_word_frac", "few stop words"),
    "has_two_stop_words": ("q_stop_word_count", "fewer than two stop words"),
    "dup_lines": ("q_dup_line_frac", "repeated lines"),
    "dup_para_chars": ("q_dup_para_char_frac", "repeated paragraphs"),
    "top_2gram": ("q_top_2gram_char_frac", "one word 2-gram dominates"),
    "top_4gram": ("q_top_4gram_char_frac", "one word 4-gram dominates"),
    "dup_5gram": ("q_dup_5gram_char_frac", "repeated 5-grams"),
    "dup_10gram": ("q_dup_10gram_char_frac", "repeated 10-grams"),
    "mostly_dup_10gram": ("q_dup_10gram_char_frac", "made of repeated passages"),
    "mostly_dup_lines": ("q_dup_line_frac", "mostly repeated lines"),
    "c4_kept_lines": ("q_c4_line_keep_frac", "few lines C4 would keep"),
    "javascript_lines": ("q_javascript_line_frac", "lines about JavaScript"),
    "policy_lines": ("q_policy_line_frac", "cookie, terms or privacy lines"),
    "lorem_ipsum": ("q_lorem_ipsum", "lorem ipsum"),
    "curly_braces": ("q_curly_brace_frac", "curly braces (code)"),
    "punct_lines": ("q_line_punct_frac", "few lines end in punctuation"),
    "short_lines": ("q_short_line_frac", "short lines"),
    "char_dup": ("q_char_dup_frac", "characters in repeated lines"),
    "log_lines_per_word": ("q_newline_word_ratio", "many line breaks per word"),
    "mostly_short_lines": ("q_short_line_frac", "mostly short lines"),
    "lower_sentence_starts": ("q_lower_sentence_start_frac", "sentences start lower-case"),
    "midsentence_cap_stops": ("q_midsentence_cap_stop_frac", "capitalised stop words mid-sentence"),
    "salad_lower_starts": ("q_lower_sentence_start_frac", "word salad (lower-case starts)"),
    "salad_cap_stops": ("q_midsentence_cap_stop_frac", "word salad (capitals mid-sentence)"),
    "list_like_lines": ("q_newline_word_ratio", "list-like: a line every few words"),
    "digits": ("q_digit_char_frac", "digits (tables, logs)"),
    "punctuation": ("q_punct_char_frac", "punctuation and symbols"),
    "unique_words": ("q_unique_word_frac", "word variety"),
    "low_unique_words": ("q_unique_word_frac", "few distinct words"),
    "lang_score": ("q_lang_score", "uncertain language"),
}
"""For each model input (``flows.quality.FEATURE_NAMES``): the signal column it reads and what it means."""


def low_score_drivers(sample: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ``{feature, signal, label, documents, share, mean_pull}``, most frequent driver first:
    ``documents`` counts the sampled documents whose score this input pulls down the most;
    ``mean_pull`` is its mean contribution to their logit (negative)."""
    top: Counter[str] = Counter()
    pull: dict[str, float] = {}
    judged = 0
    for row in sample:
        signals = {k: float(v) for k, v in row.items() if k.startswith("q_") and v is not None}
        if len(signals) != sum(1 for k in row if k.startswith("q_")) or not all(map(math.isfinite, signals.values())):
            continue  # a row written before a signal existed
        parts = feature_contributions(signals, row.get("lang"))
        feature, value = min(parts.items(), key=lambda item: item[1])
        if value >= 0:
            continue  # nothing pulls this one down: the bias alone keeps it under the cut
        judged += 1
        top[feature] += 1
        pull[feature] = pull.get(feature, 0.0) + value
    return [{"feature": f, "signal": FEATURE_SIGNALS.get(f, (f, f))[0], "label": FEATURE_SIGNALS.get(f, (f, f))[1],
             "documents": n, "share": n / judged, "mean_pull": pull[f] / n} for f, n in top.most_common()]

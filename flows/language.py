"""Language identification with py3langid, whose model ships inside the package (no download)."""

from __future__ import annotations

from functools import lru_cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

# Long documents add little evidence after the first few thousand characters but cost time.
_SAMPLE_CHARS = 2000


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str | None, float]:
    """Return ``(ISO 639-1 code, confidence in 0..1)``; ``(None, 0.0)`` when there is no text."""
    sample = text[:_SAMPLE_CHARS]
    if not any(ch.isalpha() for ch in sample):
        return None, 0.0
    lang, confidence = _identifier().classify(sample)
    return str(lang), float(confidence)

"""Quality signals (``q_*``) and a 0..1 ``quality_score`` per document: score, don't decide."""

from flows.quality.config import QualityConfig
from flows.quality.score import (
    FEATURE_COUNT,
    FEATURE_NAMES,
    FEATURE_SIGNS,
    feature_contributions,
    features,
    quality_score,
    score_batch,
)
from flows.quality.signals import SIGNAL_DOCS, SIGNAL_NAMES, quality_signals, stopwords_for

__all__ = [
    "FEATURE_COUNT",
    "FEATURE_NAMES",
    "FEATURE_SIGNS",
    "SIGNAL_DOCS",
    "SIGNAL_NAMES",
    "QualityConfig",
    "feature_contributions",
    "features",
    "quality_score",
    "quality_signals",
    "score_batch",
    "stopwords_for",
]

"""Settings of the quality stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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


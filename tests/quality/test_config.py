"""The quality stage's settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.quality import (
    QualityConfig,
)


def test_config_is_frozen_and_strict() -> None:
    config = QualityConfig()
    assert config.default_cut == 0.5
    with pytest.raises(ValidationError):
        QualityConfig(cut=0.3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        config.default_cut = 0.1  # type: ignore[misc]

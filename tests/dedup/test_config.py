"""DedupConfig: frozen, strict, and checked for consistent parameters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.dedup import DedupConfig
from tests.dedup.helpers import CONFIG


def test_config_is_frozen_strict_and_checked() -> None:
    with pytest.raises(ValidationError):
        DedupConfig(bands=40, rows=4)  # 160 > 128 permutations
    with pytest.raises(ValidationError):
        DedupConfig(shingle_kind="char")  # token hashing needs word shingles
    with pytest.raises(ValidationError):
        DedupConfig(unknown=1)  # type: ignore[call-arg,unused-ignore]
    with pytest.raises(ValidationError):
        CONFIG.threshold = 0.1  # type: ignore[misc,unused-ignore]
    assert DedupConfig.model_validate(CONFIG.model_dump()) == CONFIG
    assert "threshold" not in CONFIG.index_params()

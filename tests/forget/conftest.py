"""The lake the forget tests start from, built by the real ingest once per test process: both modules (the
takedowns, and the takedowns killed mid-way) copy it and never change it, and run in one xdist group so that it is
built once in the whole run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.forget import corpus

# The xdist group of tests/forget/test_forget.py and tests/forget/test_crash.py: one worker builds the lake once.
GROUP = pytest.mark.xdist_group("tests.forget")


@pytest.fixture(scope="session")
def forget_lake(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Path:
    """Two runs of tests/forget/corpus.py's pages (copies across runs); the folder also holds each run's source
    (``run1/``, ``run2/``). Tests copy it before they change anything."""
    return corpus.build_lake(tmp_path_factory.mktemp("forget"))

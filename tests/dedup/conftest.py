"""Fixtures of the dedup tests: an index folder in a fresh lake, and a copy of the format-1 index."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.dedup.helpers import FORMAT_1


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "lake" / "_index"


@pytest.fixture
def format_1_index(tmp_path: Path) -> Path:
    index_dir = tmp_path / "lake" / "_index"
    shutil.copytree(FORMAT_1 / "_index", index_dir)
    return index_dir

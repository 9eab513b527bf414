"""Shared fixtures: paths to the seeds and the gold corpora, a Prefect test server, hypothesis profile."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
CORPORA = Path(os.environ.get("SIFTLAKE_CORPORA", REPO.parent / "shared" / "corpora"))

settings.register_profile("ci", deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return SEEDS


@pytest.fixture(scope="session")
def corpora() -> Path:
    assert CORPORA.is_dir(), f"the gold corpora are expected at {CORPORA} (set SIFTLAKE_CORPORA)"
    return CORPORA


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prefect API for the flow tests (a real server on 127.0.0.1, SQLite in a temp dir); yields its URL.

    Subprocesses given this URL in PREFECT_API_URL use it instead of starting a temporary server each.
    """
    from prefect.settings import get_current_settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    with prefect_test_harness(server_startup_timeout=120):
        yield str(get_current_settings().api.url)

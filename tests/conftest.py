"""Fixtures: the seeds and the gold corpora, a Prefect API and an S3 server per test process; hypothesis profile.

The servers and builders themselves live in ``tests/support``; this file only wires them. Under pytest-xdist
each worker is a process of its own, so a session fixture is one per worker (its own Prefect home and API, its
own S3 server on a free port). A test that needs more than that says so with a marker, listed in pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support.paths import CORPORA, REPO, SEEDS
from tests.support.servers import FaultyProxy, S3Server, environment, free_port, prefect_test_api, wait_for_http

# Temporary: other test files still import these from tests.conftest; they move to tests.support imports, and
# then this re-export goes.
__all__ = ["CORPORA", "REPO", "SEEDS", "FaultyProxy", "S3Server", "wait_for_http"]

settings.register_profile("ci", deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

# Markers that keep a test off a worker where it would meet its kind (see pytest_collection_modifyitems).
_GROUPED = ("server", "alone")


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return SEEDS


@pytest.fixture(scope="session")
def corpora() -> Path:
    assert CORPORA.is_dir(), f"the gold corpora are expected at {CORPORA} (set SIFTLAKE_CORPORA)"
    return CORPORA


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prefect API for this test process's flow tests (SQLite in a temp dir); yields its URL."""
    with prefect_test_api(tmp_path_factory.mktemp("prefect-home")) as url:
        yield url


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A local S3 endpoint for the object-storage tests; its credentials and endpoint are put in the
    environment (the standard AWS variables), as a worker's would be."""
    server = S3Server(free_port())
    server.start()
    try:
        with environment(server.env):
            yield server
    finally:
        server.stop()

"""Fixtures: the seeds and the gold corpora, a Prefect API and the object stores (S3, Cloud Storage and Azure Blob
emulators) per test process, the ``store`` / ``object_store`` kinds the conformance suite runs on; hypothesis profile.

The servers and builders themselves live in ``tests/support``; this file only wires them. Under pytest-xdist
each worker is a process of its own, so a session fixture is one per worker (its own Prefect home and API, its
own object store servers on free ports). A test that needs more than that says so with a marker, listed in
pyproject.toml.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, settings

from tests.support.paths import CORPORA, SEEDS
from tests.support.servers import (
    OBJECT_STORES,
    STORE_SERVERS,
    AzureServer,
    GCSServer,
    S3Server,
    StoreUnderTest,
    environment,
    free_port,
    prefect_test_api,
)

# gcsfs reads this when it is imported (whichever test imports it first): without it every call to the Cloud
# Storage emulator waits a minute for a gRPC control plane that an emulator does not have.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
ServerT = TypeVar("ServerT", S3Server, GCSServer, AzureServer)

settings.register_profile("ci", deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

# Tests with these markers run one after another on one worker: a group per marker.
_GROUPED = ("server", "alone")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (addopts): one worker more than the machine has cores. A test spends much of its time waiting on
    something else (a CLI run's process, an object store's server, a Prefect worker's poll, a lease, a backoff), so
    with one worker per core the suite's processes used 1.44 of 2 cores; a worker more fills some of those waits (on
    2 cores, December 2026: 441 s with 3 workers, 465 s with 2). PYTEST_XDIST_AUTO_NUM_WORKERS still wins."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").isdigit():
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    return (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) + 1


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put each test in the xdist group that keeps its needs met under ``--dist=loadgroup``: its marker's group
    (``server``, ``alone``), else, when it uses a module-scoped fixture (a seeded lake, a deployment), its module's
    group, so that the fixture is built once, on one worker, as in a serial run."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        group = next((name for name in _GROUPED if item.get_closest_marker(name)), None)
        if group is None and isinstance(item, pytest.Function):
            definitions = item._fixtureinfo.name2fixturedefs.values()
            if any(defs[-1].scope == "module" for defs in definitions):
                group = item.module.__name__
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


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


def _serving(server: ServerT) -> Iterator[ServerT]:
    """``server`` started, its settings in the environment (as a worker's would be), stopped at the end."""
    server.start()
    try:
        with environment(server.env):
            yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A local S3 endpoint (moto) for the object-storage tests; the standard AWS variables set."""
    yield from _serving(S3Server(free_port()))


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSServer]:
    """A local Cloud Storage emulator (fake-gcs-server); STORAGE_EMULATOR_HOST set."""
    yield from _serving(GCSServer(free_port()))


@pytest.fixture(scope="session")
def azure_server() -> Iterator[AzureServer]:
    """A local Azure Blob emulator (Azurite); AZURE_STORAGE_CONNECTION_STRING set (its development account)."""
    yield from _serving(AzureServer(free_port()))


def _store_under_test(request: pytest.FixtureRequest, folder: Path) -> StoreUnderTest:
    server = STORE_SERVERS[request.param]
    return StoreUnderTest(request.param, request.getfixturevalue(server) if server else None, folder)


@pytest.fixture(params=list(STORE_SERVERS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreUnderTest:
    """Each kind of store in turn: a local folder, S3, Cloud Storage, Azure Blob."""
    return _store_under_test(request, tmp_path / "buckets")


@pytest.fixture(params=OBJECT_STORES)
def object_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreUnderTest:
    """Each object store in turn: S3, Cloud Storage, Azure Blob."""
    return _store_under_test(request, tmp_path / "buckets")


def pytest_configure(config: pytest.Config) -> None:
    """Refuse --dist=loadgroup where it would not group: with pytest 9.2 and pytest-xdist 3.8 a group's tests run
    on several workers (each building the module fixtures again, timing-sensitive tests side by side)."""
    version = tuple(int(part) for part in pytest.__version__.split(".")[:2] if part.isdigit())
    if config.getoption("dist", "no") == "loadgroup" and version >= (9, 2):
        raise pytest.UsageError(f"pytest {pytest.__version__} breaks --dist=loadgroup (pytest-xdist#1386): "
                                "install the versions pyproject.toml names (make install), or run with -n 0")

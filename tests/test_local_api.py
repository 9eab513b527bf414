"""The background Prefect API that CLI runs share when no Prefect server is configured (flows/local_api.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows import local_api

pytestmark = pytest.mark.flow


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A Prefect home of its own; whatever server a test leaves there is stopped afterwards."""
    home = tmp_path / "prefect-home"
    yield home
    local_api.stop(home)


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(home), **extra}
    env.pop("PREFECT_API_URL", None)
    return env


def siftlake(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300, check=False)


def server_pids(home: Path) -> set[int]:
    return {json.loads(p.read_text())["pid"] for p in home.glob("siftlake-api-*.json")}


def gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_runs_share_one_background_server_that_keeps_their_flow_runs(tmp_path: Path, seeds_dir: Path,
                                                                      home: Path) -> None:
    env = cli_env(home)
    first = siftlake("ingest", str(seeds_dir), "--lake", str(tmp_path / "lake"), "--json", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads(first.stdout.strip().splitlines()[-1])["documents"] == 5
    assert "Starting temporary server" not in first.stderr
    (pid,) = server_pids(home)

    second = siftlake("ingest", str(seeds_dir), "--lake", str(tmp_path / "lake2"), "--json", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert server_pids(home) == {pid}, "the second run started a server of its own"

    # The runs are in the server's database, with their artifacts, as with Prefect's temporary server.
    (api,) = local_api.running(home)
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with SyncPrefectClient(api.url) as client:
        runs = client.read_flow_runs()
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ingest-counts"])))
    assert sum(r.state is not None and r.state.is_completed() for r in runs) == 2
    assert len(artifacts) == 2

    stopped = siftlake("server", "stop", env=env, cwd=tmp_path)
    assert stopped.returncode == 0 and "stopped 1" in stopped.stdout
    assert gone(pid, within_s=20)


@pytest.mark.alone
def test_the_server_stops_itself_once_idle(tmp_path: Path, home: Path) -> None:
    started = siftlake("server", "start", env=cli_env(home, SIFTLAKE_API_IDLE_S="2"), cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    (pid,) = server_pids(home)
    assert gone(pid, within_s=30), "the idle server did not stop"
    assert not server_pids(home), "the stopped server left its state file"


def test_a_run_that_cannot_begin_leaves_no_server_behind(tmp_path: Path, home: Path) -> None:
    result = siftlake("ingest", str(tmp_path / "missing"), "--lake", str(tmp_path / "lake"), env=cli_env(home),
                      cwd=tmp_path)
    assert result.returncode == 1 and "does not exist" in result.stderr
    assert not server_pids(home)
    (tmp_path / "bad.json").write_text(json.dumps({"dedup": {"treshold": 0.5}}))
    result = siftlake("ingest", str(tmp_path), "--config", str(tmp_path / "bad.json"), env=cli_env(home),
                      cwd=tmp_path)
    assert result.returncode == 2 and "treshold" in result.stderr
    assert not server_pids(home)


def test_no_background_server_when_a_server_is_configured_or_it_is_turned_off(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(home))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert local_api.start_or_reuse() is None
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.setenv(local_api.IDLE_ENV, "0")
    assert local_api.start_or_reuse() is None
    home.mkdir()
    (home / "profiles.toml").write_text('active = "work"\n[profiles.work]\nPREFECT_API_URL = "http://h:4200/api"\n')
    monkeypatch.delenv(local_api.IDLE_ENV)
    assert local_api.configured_api_url() == "http://h:4200/api"
    assert local_api.start_or_reuse() is None
    monkeypatch.setenv(local_api.IDLE_ENV, "soon")
    with pytest.raises(ValueError, match="SIFTLAKE_API_IDLE_S"):
        local_api.idle_seconds()


def test_a_stale_state_file_never_gets_another_process_killed(home: Path) -> None:
    home.mkdir()
    # The state file of a server long gone, whose pid now belongs to another process (this one).
    stale = home / "siftlake-api-0123456789abcdef.json"
    stale.write_text(json.dumps({"url": "http://127.0.0.1:9/api", "pid": os.getpid()}))
    assert local_api.running(home) == []
    assert local_api.stop(home) == []  # this test would not get here if it had been sent SIGTERM
    assert not stale.exists()

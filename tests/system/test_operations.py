"""Operating the flow: skipping unchanged inputs, resuming a killed run, two runs on one lake."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows import lake as lakefs
from flows.config import IngestConfig

pytestmark = pytest.mark.flow
SMALL_SHARDS = {"read": {"shard_files": 1}, "runner": {"kind": "thread", "workers": 1, "shards_in_flight": 1}}


def ingest(source: Path, lake: Path, **overrides: Any) -> dict[str, Any]:
    from flows.ingest import ingest as ingest_flow

    return ingest_flow(IngestConfig.model_validate({"source": str(source), "lake": str(lake), **overrides}))


def documents(lake: Path) -> list[dict[str, Any]]:
    frame = duckdb.sql(f"select * from read_parquet('{lake}/documents/**/*.parquet', hive_partitioning=true)").df()
    return frame.to_dict("records")


@pytest.fixture
def api_url(prefect_server: str) -> str:
    return prefect_server


def cli(source: Path, lake: Path, config: dict[str, Any], api_url: str, home: Path) -> subprocess.Popen[str]:
    """`siftlake ingest` in its own process, reporting to the test session's Prefect server."""
    config_file = home / f"config-{time.monotonic_ns()}.json"
    home.mkdir(exist_ok=True)
    config_file.write_text(json.dumps(config))
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api_url}
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "ingest", str(source), "--lake", str(lake), "--config", str(config_file),
         "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


@pytest.mark.usefixtures("prefect_server")
def test_unchanged_inbox_files_are_skipped_and_changed_ones_reingested(tmp_path: Path, seeds_dir: Path) -> None:
    inbox, lake = tmp_path / "inbox", tmp_path / "lake"
    shutil.copytree(seeds_dir, inbox)
    first = ingest(inbox, lake)
    assert first["documents"] == 5
    changed = inbox / "003_8f879b3927a214c6.txt"
    changed.write_text(changed.read_text() + "\n\nUpdate: this article was revised with one more sentence.")
    shutil.copy(seeds_dir / "001_6e6ba751b9dd1bff.txt", inbox / "new-copy.txt")
    second = ingest(inbox, lake)
    assert second["skipped_known"] == 4
    assert second["stages"]["extract"]["in"] == 2, "unchanged files must not be extracted again"
    rows = {r["source_uri"]: r for r in documents(lake)}
    versions = [r for r in documents(lake) if r["source_uri"] == "003_8f879b3927a214c6.txt"]
    assert len(versions) == 2
    old, new = sorted(versions, key=lambda r: r["run_id"])
    assert not old["is_duplicate"] and new["is_duplicate"] and new["dup_cluster"] == old["doc_id"]
    assert rows["new-copy.txt"]["is_duplicate"]
    assert rows["new-copy.txt"]["dup_cluster"] == rows["001_6e6ba751b9dd1bff.txt"]["doc_id"]


def _many_files(tmp_path: Path, seeds_dir: Path, copies: int) -> Path:
    source = tmp_path / "many"
    source.mkdir()
    seeds = sorted(seeds_dir.iterdir())
    for n in range(copies):
        text = seeds[n % len(seeds)].read_text()
        (source / f"doc-{n:03d}.txt").write_text(f"Edition {n} of the daily digest.\n\n{text}")
    return source


@pytest.mark.alone
def test_a_killed_run_resumes_without_redoing_staged_shards(tmp_path: Path, seeds_dir: Path, api_url: str) -> None:
    source, lake = _many_files(tmp_path, seeds_dir, 30), tmp_path / "lake"
    first = cli(source, lake, SMALL_SHARDS, api_url, tmp_path / "home")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(lake.glob("_staging/*/shards/shard-*[0-9].parquet"))) < 3:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(30)
    staged = list(lake.glob("_staging/*/shards/shard-*[0-9].parquet"))
    assert 3 <= len(staged) < 30, "the run must be killed mid-way for this test to mean anything"
    assert not (lake / "documents").exists(), "a killed run must leave no visible rows"
    killed_run = staged[0].parent.parent.name

    second = cli(source, lake, SMALL_SHARDS, api_url, tmp_path / "home")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-3000:]
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["shards"] == 30 and counts["shards_resumed"] >= len(staged)
    rows = documents(lake)
    assert len(rows) == 30 and len({r["doc_id"] for r in rows}) == 30
    assert {r["run_id"] for r in rows} == {killed_run}
    assert not list(lake.glob("_staging/*"))


def test_a_second_run_on_a_busy_lake_fails_or_waits_as_configured(
    tmp_path: Path, seeds_dir: Path, api_url: str
) -> None:
    lake = tmp_path / "lake"
    with lakefs.lake_lock(lake, 0):
        refused = cli(seeds_dir, lake, {}, api_url, tmp_path / "home")
        _, err = refused.communicate(timeout=300)
    assert refused.returncode == 1
    assert "being written by" in err and "wait for it to finish" in err

    release = threading.Event()

    def hold() -> None:
        with lakefs.lake_lock(lake, 0):
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.5)
    waiting = cli(seeds_dir, lake, {"lock_wait_s": 120}, api_url, tmp_path / "home")
    time.sleep(3)
    release.set()
    holder.join()
    _, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err[-3000:]
    assert len(documents(lake)) == 5


def test_two_concurrent_runs_leave_a_consistent_lake(tmp_path: Path, seeds_dir: Path, api_url: str) -> None:
    lake = tmp_path / "lake"
    runs = [cli(seeds_dir, lake, {"lock_wait_s": 240}, api_url, tmp_path / f"home{i}") for i in range(2)]
    outputs = [run.communicate(timeout=400) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    rows = documents(lake)
    assert len(rows) == 5 and len({r["doc_id"] for r in rows}) == 5
    totals = sorted(json.loads(out.strip().splitlines()[-1])["documents"] for out, _ in outputs)
    assert totals == [0, 5]

"""Crash safety (issue 8): an ingest killed at any point leaves a readable lake, and the next run completes it.

Each test runs ``python -m flows.cli ingest`` in a subprocess, kills it (``kill -9`` from outside while
shards are being extracted, or ``SIFTLAKE_FAULT``, which ``flows.lake.fault_point`` turns into an
immediate ``os._exit`` at a commit step), reads the lake with duckdb, then runs the same ingest again
and checks the final lake holds exactly the expected rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.support.paths import REPO

pytestmark = [pytest.mark.flow, pytest.mark.alone, pytest.mark.usefixtures("prefect_server")]

TOPICS = ["rivers and the fish that live in them", "the history of the printing press in Europe",
          "how bees choose a place for a new hive", "the chemistry of bread dough rising overnight"]
EXPECTED_DOCS = {"a.txt", "b.txt", "d.txt", "e.txt"}
EXPECTED_REJECTS = {"c_slow.html": ("extract", "extract_timeout"), "z_empty.txt": ("read", "empty")}
EXTRACT_TIMEOUT_S = 2.0


def _prose(topic: str) -> str:
    return "\n\n".join(f"Paragraph {n} of a long article about {topic}, written in plain and careful sentences."
                       for n in range(8))


@pytest.fixture(scope="module")
def earlier_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake that already holds a committed run, so a crash has rows to spoil and duckdb something to read."""
    from flows.config import IngestConfig
    from flows.ingest import ingest

    root = tmp_path_factory.mktemp("earlier")
    (root / "src").mkdir()
    (root / "src" / "old.txt").write_text(_prose("the lighthouse keepers of the northern coast"))
    (root / "src" / "old_empty.md").write_text("  ")
    ingest(IngestConfig(source=str(root / "src"), lake=str(root / "lake"), runner={"kind": "thread"}))
    return root / "lake"


@pytest.fixture
def lake(earlier_lake: Path, tmp_path: Path) -> Path:
    shutil.copytree(earlier_lake, tmp_path / "lake")
    return tmp_path / "lake"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Six files, one per shard; the third is a page the extractor works on for well over a minute."""
    src = tmp_path / "source"
    src.mkdir()
    for name, topic in zip(sorted(EXPECTED_DOCS), TOPICS, strict=True):
        (src / name).write_text(_prose(topic))
    (src / "c_slow.html").write_text(
        "<html><body>" + "<table><tr><td><p>cell text here</p></td></tr></table>" * 60_000 + "</body></html>")
    (src / "z_empty.txt").write_text("")
    return src


def _start(source: Path, lake: Path, tmp_path: Path, fault: str | None = None) -> subprocess.Popen[str]:
    from prefect.settings import PREFECT_API_URL

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"read": {"shard_files": 1}, "extract": {"timeout_s": EXTRACT_TIMEOUT_S},
                                  "runner": {"kind": "thread", "workers": 1}}))
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_HOME": str(tmp_path / "home")}
    env.pop("SIFTLAKE_FAULT", None)
    if fault:
        env["SIFTLAKE_FAULT"] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "ingest", str(source), "--lake", str(lake), "--config", str(config),
         "--json"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _sweep(proc: subprocess.Popen[str]) -> None:
    """kill -9 the ingest's process group: the ingest and what it started (the extraction child)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    _sweep(proc)
    proc.communicate(timeout=60)


def _finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    """Wait for the ingest; leave no process of its group behind, whatever happens."""
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        _sweep(proc)
        if proc.poll() is None:
            proc.communicate(timeout=60)
    return proc.returncode, out, err


def _rows(lake: Path, table: str, columns: str) -> list[tuple[Any, ...]]:
    """Rows of a lake table through duckdb; a table with no file yet has no rows."""
    if not list((lake / table).glob("**/*.parquet")):
        return []
    return duckdb.sql(f"select {columns} from read_parquet('{lake}/{table}/**/*.parquet', hive_partitioning=true)"
                      ).fetchall()


def _staged_run(lake: Path) -> str:
    runs = [p.name for p in (lake / "_staging").iterdir()]
    assert len(runs) == 1, runs
    return runs[0]


def _wait_for(path_glob: str, lake: Path, proc: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not list(lake.glob(path_glob)):
        assert proc.poll() is None, f"the ingest ended before {path_glob}: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"{path_glob} never appeared"
        time.sleep(0.05)


def _earlier_rows(lake: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows of the earlier run, read through duckdb: a crash must leave them as they were."""
    docs = sorted(r for r in _rows(lake, "documents", "source_uri, doc_id, run_id") if r[0].startswith("old"))
    rejects = sorted(r for r in _rows(lake, "rejects", "source_uri, reason, run_id") if r[0].startswith("old"))
    return docs, rejects


def _new_rows(lake: Path, table: str, columns: str) -> list[tuple[Any, ...]]:
    return [r for r in _rows(lake, table, columns) if not r[0].startswith("old")]


def _assert_final_lake(lake: Path, run_id: str | None, earlier: tuple[Any, Any]) -> None:
    """Exactly the expected rows: each unit once, in the right table, from the run that was interrupted."""
    assert _earlier_rows(lake) == earlier
    docs = _new_rows(lake, "documents", "source_uri, run_id")
    rejects = _new_rows(lake, "rejects", "source_uri, stage, reason, run_id")
    assert sorted(uri for uri, _ in docs) == sorted(EXPECTED_DOCS)
    assert {uri: (stage, reason) for uri, stage, reason, _ in rejects} == EXPECTED_REJECTS
    assert len(rejects) == len(EXPECTED_REJECTS)
    if run_id is not None:
        assert {r for _, r in docs} | {r[-1] for r in rejects} == {run_id}, "the next run resumes the same run"
    assert not any((lake / "_staging").iterdir())


def test_killed_while_extracting_the_next_run_resumes_the_staged_shards(source: Path, lake: Path,
                                                                         tmp_path: Path) -> None:
    earlier = _earlier_rows(lake)
    assert len(earlier[0]) == 1 and len(earlier[1]) == 1
    proc = _start(source, lake, tmp_path)
    _wait_for("_staging/*/shards/shard-000001.parquet", lake, proc)  # shard 2, the slow page, is in extraction
    _kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    run_id = _staged_run(lake)
    assert not (lake / "_staging" / run_id / "COMMIT").exists()
    assert _earlier_rows(lake) == earlier
    assert _new_rows(lake, "documents", "source_uri") == [] and _new_rows(lake, "rejects", "source_uri") == []
    assert len(list((lake / "_runs").glob("*.json"))) == 1

    code, out, err = _finish(_start(source, lake, tmp_path))
    assert code == 0, err[-3000:]
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["shards_resumed"] >= 2 and counts["shards"] == 6
    _assert_final_lake(lake, run_id, earlier)


@pytest.mark.parametrize("fault", ["write:after_documents", "commit:before_marker", "commit:after_first_move"])
def test_killed_while_writing_or_committing_the_lake_stays_readable_and_the_next_run_completes_it(
        fault: str, source: Path, lake: Path, tmp_path: Path) -> None:
    earlier = _earlier_rows(lake)
    code, _, err = _finish(_start(source, lake, tmp_path, fault=fault))
    assert code == 137, err[-3000:]
    run_id = _staged_run(lake)
    assert _earlier_rows(lake) == earlier
    docs = _new_rows(lake, "documents", "source_uri, run_id")
    rejects = _new_rows(lake, "rejects", "source_uri, run_id")
    if fault != "commit:after_first_move":
        assert docs == [] and rejects == [], "nothing of a run is visible before its COMMIT"
    else:
        # COMMIT is written: the run is decided. Each table shows all of the run's rows or none of them
        # (one file per table, renamed into place); the next run finishes the renames.
        assert (lake / "_staging" / run_id / "COMMIT").exists()
        assert sorted(uri for uri, _ in docs) in ([], sorted(EXPECTED_DOCS))
        assert sorted(uri for uri, _ in rejects) in ([], sorted(EXPECTED_REJECTS))

    code, out, err = _finish(_start(source, lake, tmp_path))
    assert code == 0, err[-3000:]
    _assert_final_lake(lake, run_id, earlier)
    if fault == "commit:after_first_move":
        assert f"finished the interrupted commit of run {run_id}" in err
        assert json.loads(out.strip().splitlines()[-1])["documents"] == 0

"""The lake's storage rules: atomic commits, roll-forward after a crash, one writer at a time."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pyarrow as pa
import pytest

from flows import lake as lakefs
from flows.document import Reject


def staged_run(lake: Path, run_id: str = "20260101T000000Z-test") -> tuple[lakefs.RunPaths, list[str]]:
    paths = lakefs.RunPaths(lake, run_id, "2026-01-01")
    table = lakefs.rejects_table([Reject("u1", "a.txt", "read", "empty", "empty file")], run_id)
    relative = paths.table_file(lakefs.REJECTS)
    lakefs.write_parquet_atomic(table, paths.staging / relative)
    paths.manifest.write_text(json.dumps({"run_id": run_id}))
    return paths, [relative]


def test_commit_moves_files_into_place_and_publishes_the_manifest(tmp_path: Path) -> None:
    paths, moves = staged_run(tmp_path)
    lakefs.commit(paths, moves)
    assert (tmp_path / moves[0]).is_file()
    assert lakefs.read_manifests(tmp_path) == [{"run_id": paths.run_id}]
    assert not paths.staging.exists()


def test_an_interrupted_commit_is_rolled_forward(tmp_path: Path) -> None:
    paths, moves = staged_run(tmp_path)
    (paths.staging / lakefs.COMMIT).write_text(json.dumps({"moves": moves, "manifest": f"_runs/{paths.run_id}.json"}))
    assert lakefs.recover(tmp_path) == [paths.run_id]
    assert (tmp_path / moves[0]).is_file() and not paths.staging.exists()


def test_a_run_without_commit_marker_stays_staged_for_resume(tmp_path: Path) -> None:
    paths, _ = staged_run(tmp_path)
    assert lakefs.recover(tmp_path) == []
    assert lakefs.unfinished_runs(tmp_path) == [paths.run_id]
    assert not (tmp_path / lakefs.REJECTS).exists()


def test_known_ids_cover_documents_and_rejects(tmp_path: Path) -> None:
    paths, moves = staged_run(tmp_path)
    lakefs.commit(paths, moves)
    unit = "0123456789abcdef0123456789abcdef"
    table = lakefs.rejects_table([Reject(unit, "b.txt", "read", "binary", "x")], "r2")
    lakefs.write_parquet_atomic(table, tmp_path / "rejects" / "ingest_date=2026-01-02" / "run-r2.parquet")
    known = lakefs.known_unit_ids(tmp_path)
    assert lakefs.is_known(known, unit)
    assert not lakefs.is_known(known, "f" * 32)


def _hold_lock(lake: str, ready: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event) -> None:
    with lakefs.lake_lock(Path(lake), 0):
        ready.set()
        release.wait(30)


def test_a_second_writer_fails_with_a_message_that_says_what_to_do(tmp_path: Path) -> None:
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(lakefs.LakeBusyError, match="wait for it to finish"), lakefs.lake_lock(tmp_path, 0.2):
            pass
    finally:
        release.set()
        holder.join(30)
    with lakefs.lake_lock(tmp_path, 0):
        pass


def test_documents_schema_has_every_contract_column() -> None:
    names = set(lakefs.documents_schema(["q_example"]).names)
    contract = {"doc_id", "source_uri", "url", "title", "text", "lang", "content_hash", "dup_cluster",
                "is_duplicate", "quality_score", "run_id"}
    assert contract <= names and "q_example" in names
    assert lakefs.documents_schema([]).field("is_duplicate").type == pa.bool_()

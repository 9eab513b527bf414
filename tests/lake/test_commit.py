"""The lake's commits: atomic, rolled forward after a crash, a run without its marker kept for resume."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_a_commit_deletes_what_its_moves_make_obsolete_and_publishes_its_manifest_where_asked(tmp_path: Path) -> None:
    paths, moves = staged_run(tmp_path, "forget-20260101T000000Z-test")
    (tmp_path / "_index" / "segments" / "old").mkdir(parents=True)
    lakefs.commit(paths, moves, manifest="_takedowns/log/x.json", deletes=["_index/segments/old"])
    assert not (tmp_path / "_index" / "segments" / "old").exists()
    assert (tmp_path / "_takedowns" / "log" / "x.json").is_file() and lakefs.read_manifests(tmp_path) == []


def test_a_takedown_without_commit_marker_is_discarded_not_resumed(tmp_path: Path) -> None:
    paths, _ = staged_run(tmp_path, "forget-20260101T000000Z-test")
    assert lakefs.unfinished_runs(tmp_path) == []
    assert lakefs.recover(tmp_path) == [] and not paths.staging.exists()

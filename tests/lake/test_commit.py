"""The lake's commits: atomic, rolled forward after a crash, a run without its marker kept for resume."""

from __future__ import annotations

import json
from pathlib import Path

from flows import lake as lakefs
from flows.document import Reject
from flows.storage import Store
from tests.support.servers import S3Server


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


def test_a_bucket_lake_s_commit_uploads_only_what_its_tasks_did_not_mirror(tmp_path: Path, s3_server: S3Server) -> None:
    # A segment folder and the documents file are mirrored by the tasks that write them; the commit moves them
    # without a second upload (a segment is 15 objects per partition). Here each local copy is changed after its
    # mirror: what lands shows which copy the commit published.
    lake = Store(f"{s3_server.bucket('commit-mirrored')}/lake", s3_server.storage_options())
    paths = lakefs.RunPaths(lake, "20260101T000000Z-m", "2026-01-01", str(tmp_path / "scratch"))
    segment = "_index/p0001/20260101T000000Z-m"
    for name in ("keys.npy", "meta.json"):
        (paths.staging / segment).mkdir(parents=True, exist_ok=True)
        (paths.staging / segment / name).write_text(f"{name} as its task wrote it")
        lakefs.persist(paths, paths.staging / segment / name)
        (paths.staging / segment / name).write_text("changed after the mirror")
    (paths.staging / "notes.txt").write_text("local only")
    paths.manifest.write_text(json.dumps({"run_id": paths.run_id}))
    lakefs.commit(paths, ["notes.txt", segment], mirrored=[segment])
    assert lake.read_bytes(f"{segment}/keys.npy") == b"keys.npy as its task wrote it"
    assert lake.read_bytes(f"{segment}/meta.json") == b"meta.json as its task wrote it"
    assert lake.read_bytes("notes.txt") == b"local only"
    assert lakefs.read_manifests(lake) == [{"run_id": paths.run_id}] and not lake.files(lakefs.STAGING)

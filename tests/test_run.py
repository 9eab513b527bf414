"""A run's lifecycle: its identity (plan key, run id), its state, and resuming the unfinished run of a plan."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from flows import lake as lakefs
from flows import run
from flows.config import IngestConfig
from flows.document import Reject
from flows.read import InputFile
from flows.storage import Store

SHARDS = [[InputFile("/src/a.txt", "a.txt", 10), InputFile("/src/b.txt", "b.txt", 20)],
          [InputFile("/src/c.txt", "c.txt", 30)]]


def test_the_plan_key_is_stable_for_the_same_plan_and_differs_for_another() -> None:
    config = IngestConfig(source="src")
    key = run.plan_key(config, SHARDS)
    assert run.plan_key(IngestConfig(source="src"), [list(shard) for shard in SHARDS]) == key
    grown = [SHARDS[0], [InputFile("/src/c.txt", "c.txt", 31)]]
    replaced = [SHARDS[0], [InputFile("/src/c.txt", "c.txt", 30, etag='"v2"')]]
    regrouped = [[*SHARDS[0], *SHARDS[1]]]
    other_config = IngestConfig(source="src", quality={"default_cut": 0.7})
    others = [run.plan_key(config, grown), run.plan_key(config, replaced), run.plan_key(config, regrouped),
              run.plan_key(other_config, SHARDS)]
    assert key not in others and len(set(others)) == len(others)


def test_where_the_tasks_run_does_not_change_the_plan() -> None:
    config = IngestConfig(source="src")
    elsewhere = IngestConfig(source="src", runner={"kind": "thread", "workers": 3}, lock_wait_s=5,
                             storage={"scratch_dir": "/tmp/elsewhere"})
    assert run.plan_key(elsewhere, SHARDS) == run.plan_key(config, SHARDS)


def test_a_new_run_id_is_unique_and_sorts_by_time() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ids = {run.new_run_id(now) for _ in range(100)}
    assert len(ids) == 100 and all(i.startswith("20260102T030405Z-") for i in ids)
    earlier, later = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    assert run.new_run_id(earlier) < min(ids) < run.new_run_id(later)


def test_a_run_resumes_the_unfinished_run_of_its_plan(tmp_path: Path) -> None:
    lake = Store(str(tmp_path / "lake"))
    config = IngestConfig(source="src", lake=lake.uri)
    first = run.open_run(lake, config, SHARDS)
    assert first.left_alone == [] and lakefs.unfinished_runs(lake) == [first.paths.run_id]
    again = run.open_run(lake, config, SHARDS)
    assert again.paths == first.paths and again.started == first.started and again.left_alone == []


def test_a_run_of_another_plan_starts_afresh_and_names_the_unfinished_one(tmp_path: Path) -> None:
    lake = Store(str(tmp_path / "lake"))
    first = run.open_run(lake, IngestConfig(source="src", lake=lake.uri), SHARDS)
    other = run.open_run(lake, IngestConfig(source="src", lake=lake.uri), SHARDS[:1])
    assert other.paths.run_id != first.paths.run_id
    assert sorted(lakefs.unfinished_runs(lake)) == sorted([first.paths.run_id, other.paths.run_id])
    [note] = other.left_alone
    assert f"run {first.paths.run_id} (source src) stopped before its commit" in note
    assert run.abandon_hint(lake, first.paths.run_id) in note


def test_a_run_without_state_has_none_to_resume(tmp_path: Path) -> None:
    assert run.read_run_state(Store(str(tmp_path / "lake")), "20260101T000000Z-gone") == {}


def test_the_rejects_found_while_listing_are_staged_unless_the_lake_holds_them(tmp_path: Path) -> None:
    lake = Store(str(tmp_path / "lake"))
    old = Reject("a" * 32, "gone.txt", "read", "unreadable", "permission denied")
    lakefs.write_parquet_atomic(lakefs.rejects_table([old], "r0"),
                                tmp_path / "lake" / "rejects" / "ingest_date=2026-01-01" / "run-r0.parquet")
    paths = lakefs.RunPaths(lake, "r1", "2026-01-02")
    new = Reject("b" * 32, "locked.txt", "read", "unreadable", "permission denied")
    assert run.prepare_known_units(paths, [old, new]) == 1  # the store built from the tables, once
    staged = pq.read_table(paths.staging / "run.rejects.parquet").column("unit_id").to_pylist()
    assert staged == [new.unit_id]
    assert run.prepare_known_units(paths, [old, new]) is None

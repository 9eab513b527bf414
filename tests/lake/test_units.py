"""The known-units store: a run's ids known exactly once committed, lookups that read only the blocks they need
(local memory maps; ranged reads on a bucket), size-tiered merges that lose no key even when killed, a takedown's
ids forgotten, and the one-time build for a lake written before the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flows import lake as lakefs
from flows.document import Reject
from flows.lake.units import MANIFEST, KnownUnits, Manifest, read_manifest
from flows.lake.units_update import ensure, full_tiers, merge, merge_into, stage_forgotten, stage_run
from flows.storage import Store
from tests.support.paths import REPO
from tests.support.servers import S3Server


def ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n:08d}" for n in range(count)]


def run_paths(lake: Store, run_id: str) -> lakefs.RunPaths:
    return lakefs.RunPaths(lake, run_id, "2026-01-01")


def commit_ids(lake: Store, run_id: str, units: list[str]) -> lakefs.RunPaths:
    """A run whose only files are its units' keys, committed."""
    paths = run_paths(lake, run_id)
    moves = stage_run(paths, units)
    paths.manifest.parent.mkdir(parents=True, exist_ok=True)
    paths.manifest.write_text(json.dumps({"run_id": run_id}))
    lakefs.commit(paths, moves)
    return paths


def lake_with_rejects(folder: Path, units: list[str]) -> Store:
    """A lake from before the store: a rejects table holding ``units``, no ``_units/``."""
    rejects = [Reject(unit, f"{unit}.txt", "read", "empty", "") for unit in units]
    relative = "rejects/ingest_date=2026-01-01/run-old.parquet"
    lakefs.write_parquet_atomic(lakefs.rejects_table(rejects, "old"), folder / relative)
    return Store(str(folder))


def store_files(lake: Store) -> list[str]:
    return [key for key in lake.files(lakefs.UNITS) if key != MANIFEST]


def test_a_run_s_units_are_known_once_its_commit_is_done_and_not_before(tmp_path: Path) -> None:
    lake = Store(str(tmp_path))
    assert ensure(lake) == 0 and ensure(lake) is None  # a new lake: an empty store, built once
    units = ids("a", 50)
    paths = run_paths(lake, "r1")
    moves = stage_run(paths, [*units, ""])
    assert lakefs.KnownUnits.open(lake).contains(units).sum() == 0, "staged is not known"
    paths.manifest.write_text("{}")
    lakefs.commit(paths, moves)
    known = lakefs.KnownUnits.open(lake)
    assert known.contains(units).all()
    assert not known.contains([*ids("b", 50), ""]).any()
    files = read_manifest(lake)
    assert files is not None and all(f.name.endswith("/run-r1.u64") for f in files.files)
    assert sum(f.keys for f in files.files) == 50 and len({f.partition for f in files.files}) == len(files.files)


def test_a_retried_write_stages_the_run_s_files_once(tmp_path: Path) -> None:
    lake = Store(str(tmp_path))
    ensure(lake)
    paths = run_paths(lake, "r1")
    stage_run(paths, ids("a", 10))
    (paths.staging / MANIFEST).rename(tmp_path / "first.json")  # the first attempt's manifest, committed
    (tmp_path / MANIFEST).write_bytes((tmp_path / "first.json").read_bytes())
    stage_run(paths, ids("a", 10))
    again = Manifest.from_bytes((paths.staging / MANIFEST).read_bytes())
    assert sum(f.keys for f in again.files) == 10


def test_the_store_is_built_once_from_the_tables_of_an_older_lake_and_a_broken_build_redone(tmp_path: Path) -> None:
    units = ids("old", 3000)
    lake = lake_with_rejects(tmp_path, units)
    (tmp_path / "_units" / "p03").mkdir(parents=True)
    (tmp_path / "_units" / "p03" / "build-dead.u64").write_bytes(b"\0" * 16)  # a build killed before its manifest
    assert ensure(lake) == 3000
    assert not (tmp_path / "_units" / "p03" / "build-dead.u64").exists()
    assert lakefs.KnownUnits.open(lake).contains(units).all()
    assert np.array_equal(lakefs.all_known_keys(lake), lakefs.known_unit_ids(lake))
    assert ensure(lake) is None


@pytest.mark.parametrize("ranged", [False, True], ids=["memory-map", "ranged"])
def test_a_takedown_s_units_are_forgotten_and_known_again_once_rejected(tmp_path: Path, ranged: bool) -> None:
    lake = lake_with_rejects(tmp_path, ids("a", 5000))
    ensure(lake)
    gone = ids("a", 5000)[10:20]
    forget = run_paths(lake, "forget-1")
    moves, deletes = stage_forgotten(forget, gone)
    assert deletes == [] and moves[-1] == MANIFEST
    forget.manifest.write_text("{}")
    lakefs.commit(forget, moves, deletes=deletes)
    known = KnownUnits.open(lake, ranged=ranged)
    assert not known.contains(gone).any() and known.contains(ids("a", 5000)[20:]).all()
    before = {f.minus for f in known.manifest.files if f.minus}
    again = run_paths(lake, "forget-2")  # a second takedown adds to the minus lists it finds, and replaces them
    moves, deletes = stage_forgotten(again, ids("a", 5000)[:10] + gone)
    assert set(deletes) <= before and len(moves) > 1
    again.manifest.write_text("{}")
    lakefs.commit(again, moves, deletes=deletes)
    assert not KnownUnits.open(lake, ranged=ranged).contains(ids("a", 5000)[:20]).any()
    commit_ids(lake, "r2", gone[:3])  # a re-read of three of them, rejected: known again (a new file)
    known = KnownUnits.open(lake, ranged=ranged)
    assert known.contains(gone[:3]).all() and not known.contains(gone[3:]).any()
    assert set(store_files(lake)) == {f for e in known.manifest.files for f in (e.name, e.minus) if f}


def test_full_tiers_are_merged_and_every_key_stays_known(tmp_path: Path) -> None:
    lake = Store(str(tmp_path))
    ensure(lake, Manifest(partitions=2, block=4, fanout=3, first_tier=12))
    runs = [ids(f"r{n}", 7) for n in range(9)]
    for n, units in enumerate(runs):
        commit_ids(lake, f"r{n}", units)
        merge(lake)
        manifest = read_manifest(lake)
        assert manifest is not None and not full_tiers(manifest)
    assert KnownUnits.open(lake).contains([u for units in runs for u in units]).all()
    assert lakefs.all_known_keys(lake).size == 63
    manifest = read_manifest(lake)
    assert manifest is not None and any("/merge-" in f.name for f in manifest.files)
    assert len(manifest.files) < 9 * 2
    assert set(store_files(lake)) == {f.name for f in manifest.files}, "merged inputs are deleted"


def test_a_merge_applies_the_minus_lists(tmp_path: Path) -> None:
    lake = Store(str(tmp_path))
    ensure(lake, Manifest(partitions=1, block=2, fanout=2, first_tier=4))
    commit_ids(lake, "r1", ids("a", 5))
    forget = run_paths(lake, "forget-1")
    moves, deletes = stage_forgotten(forget, ids("a", 5)[:2])
    forget.manifest.write_text("{}")
    lakefs.commit(forget, moves, deletes=deletes)
    commit_ids(lake, "r2", ids("b", 5))
    assert merge(lake)
    manifest = read_manifest(lake)
    assert manifest is not None and len(manifest.files) == 1 and not manifest.files[0].minus
    assert manifest.files[0].keys == 8
    assert KnownUnits.open(lake).contains(ids("a", 5)).tolist() == [False, False, True, True, True]


def test_a_merge_in_slices_writes_the_keys_and_fence_of_one_sort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    from flows.lake import units_update

    monkeypatch.setattr(units_update, "SLICE_KEYS", 100)
    rng = np.random.default_rng(7)
    sources = [np.unique(rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64)) for n in (700, 300, 50)]
    minus = np.sort(sources[0][::5])
    target = tmp_path / "merged.u64"
    count = merge_into([(sources[0], minus), (sources[1], np.empty(0, np.uint64)), (sources[2], sources[2][:10])],
                       target, block=16)
    expected = np.union1d(np.union1d(np.setdiff1d(sources[0], minus), sources[1]), sources[2][10:])
    data = np.fromfile(target, "<u8")
    assert count == expected.size and np.array_equal(data[:count], expected)
    assert np.array_equal(data[count:], expected[::16])


_KILLED_MERGE = """
import sys
from flows.lake.units_update import merge
from flows.storage import Store
merge(Store(sys.argv[1]))
"""


@pytest.mark.parametrize("fault", ["units:merged", "units:published"])
def test_a_merge_killed_midway_loses_no_key_and_the_next_one_cleans_up(tmp_path: Path, fault: str) -> None:
    lake = Store(str(tmp_path / "lake"))
    ensure(lake, Manifest(partitions=2, block=4, fanout=2))  # every file below 4,096 keys: one tier
    runs = [ids(f"r{n}", 40) for n in range(2)]
    for n, units in enumerate(runs):
        commit_ids(lake, f"r{n}", units)
    everything = [u for units in runs for u in units]
    env = {**os.environ, "SIFTLAKE_FAULT": fault, "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", _KILLED_MERGE, lake.root], env=env, capture_output=True,
                            text=True, timeout=120)
    assert killed.returncode == 137, killed.stderr
    manifest = read_manifest(lake)
    assert manifest is not None
    left = set(store_files(lake)) - {f.name for f in manifest.files}
    assert left and all(("/merge-" in key) == (fault == "units:merged") for key in left), left
    for ranged in (False, True):
        assert KnownUnits.open(lake, ranged=ranged).contains(everything).all()
    merge(lake)
    manifest = read_manifest(lake)
    assert manifest is not None and set(store_files(lake)) == {f.name for f in manifest.files}
    assert len(manifest.files) == 2 and KnownUnits.open(lake).contains(everything).all()


def test_bucket_lookups_read_fences_then_only_the_blocks_they_need(tmp_path: Path, s3_server: S3Server) -> None:
    units = ids("u", 200_000)
    lake_with_rejects(tmp_path / "lake", units)
    ensure(Store(str(tmp_path / "lake")))
    bucket = s3_server.bucket("units-lookups")
    s3_server.upload_tree(tmp_path / "lake", f"{bucket}/lake")
    lake = Store(f"{bucket}/lake", s3_server.storage_options())
    manifest = read_manifest(lake)
    assert manifest is not None
    store_bytes = sum(8 * f.keys for f in manifest.files)
    known = KnownUnits.open(lake)
    assert known.ranged and known.bytes_read == sum(8 * manifest.fence_size(f.keys) for f in manifest.files)
    opened = known.bytes_read
    asked = units[1000:1010] + ids("new", 10)
    assert known.contains(asked).tolist() == [True] * 10 + [False] * 10
    block_bytes = 8 * manifest.block
    assert known.bytes_read - opened <= 20 * block_bytes, "one block per id at most"
    assert known.bytes_read < store_bytes / 8, (known.bytes_read, store_bytes)
    assert KnownUnits.open(lake, known) is known, "an unchanged manifest: nothing loaded again"


def test_a_bucket_lake_s_store_is_merged_and_forgotten_through_its_scratch_folder(tmp_path: Path,
                                                                                 s3_server: S3Server) -> None:
    bucket = s3_server.bucket("units-merge")
    lake = Store(f"{bucket}/lake", s3_server.storage_options())
    ensure(lake, Manifest(partitions=1, block=2, fanout=2, first_tier=4))
    for n in range(2):
        paths = lakefs.RunPaths(lake, f"r{n}", "2026-01-01", str(tmp_path / "scratch"))
        moves = stage_run(paths, ids(f"r{n}", 5))
        paths.manifest.write_text("{}")
        lakefs.commit(paths, moves)
    forget = lakefs.RunPaths(lake, "forget-1", "2026-01-01", str(tmp_path / "scratch"))
    moves, deletes = stage_forgotten(forget, ["r0-00000000"])
    forget.manifest.write_text("{}")
    lakefs.commit(forget, moves, deletes=deletes)
    assert len(merge(lake, str(tmp_path / "scratch"))) == 1
    manifest = read_manifest(lake)
    assert manifest is not None and [f.keys for f in manifest.files] == [9]
    assert set(store_files(lake)) == {manifest.files[0].name}
    assert KnownUnits.open(lake).contains(ids("r0", 5) + ids("r1", 5)).tolist() == [False] + [True] * 9
    assert not any((tmp_path / "scratch").rglob("*.u64")), "the merge's local copies are removed"


def test_a_merge_that_loses_the_lake_replaces_no_manifest_and_deletes_nothing_live(tmp_path: Path) -> None:
    lake = Store(str(tmp_path))
    ensure(lake, Manifest(partitions=1, fanout=2))
    for n in range(2):
        commit_ids(lake, f"r{n}", ids(f"r{n}", 5))
    before, live = (tmp_path / MANIFEST).read_bytes(), store_files(lake)
    calls: list[int] = []

    def lost_on_publish() -> None:
        calls.append(1)
        if len(calls) > 1:
            raise lakefs.LakeBusyError("taken over by another run")

    with pytest.raises(lakefs.LakeBusyError):
        merge(lake, check=lost_on_publish)
    assert (tmp_path / MANIFEST).read_bytes() == before and set(live) < set(store_files(lake))
    assert merge(lake) and KnownUnits.open(lake).contains(ids("r0", 5) + ids("r1", 5)).all()

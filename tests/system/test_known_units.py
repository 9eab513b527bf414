"""Known units are looked up, not shipped (issue 22): the flow on a lake written before the known-units store builds
it once and re-runs skip its units; on a bucket lake each shard reads fences and a few blocks, not the store;
a run killed between its commit and the store's merge loses no key."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flows import lake as lakefs
from flows.config import IngestConfig
from flows.document import Reject
from flows.lake.units import MANIFEST, Manifest, read_manifest
from flows.storage import Store
from tests.support.paths import REPO
from tests.support.servers import S3Server

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]
THREADS = {"kind": "thread", "workers": 2}


def ingest(source: Path, lake: str, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    from flows.ingest import ingest as ingest_flow

    storage = {"cache_dir": str(tmp_path / "cache"), "scratch_dir": str(tmp_path / "scratch"),
               **overrides.pop("storage", {})}
    config = IngestConfig.model_validate({"source": str(source), "lake": lake, "runner": THREADS,
                                          "storage": storage, **overrides})
    return ingest_flow(config)


def older_lake(folder: Path, seeds_dir: Path, extra_rejects: int = 0) -> Path:
    """A lake as siftlake wrote it before the known-units store: the seeds, and ``extra_rejects`` more units."""
    lake = folder / "lake"
    assert ingest(seeds_dir, str(lake), folder)["documents"] == 5
    shutil.rmtree(lake / lakefs.UNITS)
    if extra_rejects:
        rejects = [Reject(f"{n:032x}", f"old/{n}.txt", "read", "empty", "") for n in range(extra_rejects)]
        lakefs.write_parquet_atomic(lakefs.rejects_table(rejects, "old"),
                                    lake / "rejects" / "ingest_date=2025-01-01" / "run-old.parquet")
    return lake


def store_matches_tables(lake: Store) -> None:
    assert np.array_equal(lakefs.all_known_keys(lake), lakefs.known_unit_ids(lake)), "the store is the tables' ids"


def test_a_lake_written_before_the_store_gets_it_once_and_re_runs_skip_its_units(tmp_path: Path,
                                                                                  seeds_dir: Path) -> None:
    lake = older_lake(tmp_path, seeds_dir)
    again = ingest(seeds_dir, str(lake), tmp_path)
    assert again["documents"] == 0 and again["skipped_known"] == 5
    built = read_manifest(Store(str(lake)))
    assert built is not None and built.files and all("/build-" in f.name for f in built.files)
    store_matches_tables(Store(str(lake)))
    third = ingest(seeds_dir, str(lake), tmp_path)
    assert third["skipped_known"] == 5 and read_manifest(Store(str(lake))) == built, "built once"


def test_a_bucket_lake_s_shards_read_fences_and_the_blocks_they_need_not_the_store(
        tmp_path: Path, seeds_dir: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows import shard

    local = older_lake(tmp_path / "before", seeds_dir, extra_rejects=100_000)
    uri = f"{s3_server.bucket('known-units')}/lake"
    s3_server.upload_tree(local, uri)
    opened: list[lakefs.KnownUnits] = []
    load = shard.load_known_units

    def spied(paths: lakefs.RunPaths) -> lakefs.KnownUnits:
        opened.append(load(paths))
        return opened[-1]

    monkeypatch.setattr(shard, "load_known_units", spied)
    options = {"storage": {"options": s3_server.storage_options()}, "read": {"shard_files": 1}}
    first = ingest(seeds_dir, uri, tmp_path, **options)  # builds the store from the tables, then looks up
    assert first["documents"] == 0 and first["skipped_known"] == 5 and first["shards"] == 5
    lake = Store(uri, s3_server.storage_options())
    manifest = read_manifest(lake)
    assert manifest is not None and sum(f.keys for f in manifest.files) == 100_005
    store_bytes = sum(8 * f.keys for f in manifest.files)
    fences = sum(8 * manifest.fence_size(f.keys) for f in manifest.files)
    assert len(opened) == 5 and len({id(k) for k in opened}) == 1, "opened once in this process, for every shard"
    assert opened[0].bytes_read <= fences + 5 * 8 * manifest.block, "fences, then one block per unit"
    assert opened[0].bytes_read * 10 < store_bytes


def _ingest_cli(source: Path, lake: Path, home: Path, fault: str | None) -> subprocess.CompletedProcess[str]:
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if k != lakefs.FAULT_ENV}
    env |= {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_HOME": str(home)}
    if fault:
        env[lakefs.FAULT_ENV] = fault
    return subprocess.run([sys.executable, "-m", "flows.cli", "ingest", str(source), "--lake", str(lake), "--json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("fault", ["units:merged", "units:published"])
def test_a_run_killed_between_its_commit_and_the_store_s_merge_loses_no_key(
        tmp_path: Path, seeds_dir: Path, fault: str) -> None:
    lake = older_lake(tmp_path, seeds_dir)
    lakefs.ensure_known_units(Store(str(lake)), Manifest(partitions=1, fanout=2))  # the next run's file fills tier 0
    source = tmp_path / "new"
    source.mkdir()
    for n, path in enumerate(sorted(seeds_dir.iterdir())[:2]):
        (source / f"new-{n}.txt").write_text(f"A new edition, number {n}.\n\n{path.read_text()}")
    killed = _ingest_cli(source, lake, tmp_path / "home", fault)
    assert killed.returncode == 137, killed.stderr[-3000:]
    assert len(list((lake / "_runs").glob("*.json"))) == 2, "the run was committed before the merge"
    again = _ingest_cli(source, lake, tmp_path / "home", None)
    assert again.returncode == 0, again.stderr[-3000:]
    counts = json.loads(again.stdout.strip().splitlines()[-1])
    assert counts["documents"] == 0 and counts["skipped_known"] == 2
    store = Store(str(lake))
    store_matches_tables(store)
    manifest = read_manifest(store)
    assert manifest is not None and len(manifest.files) == 1 and "/merge-" in manifest.files[0].name
    assert sorted(store.files(lakefs.UNITS)) == sorted([MANIFEST, manifest.files[0].name]), "leftovers swept"

"""Scale-out: the flow on an existing Dask cluster (by address) writes the same lake as a local run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.config import IngestConfig
from flows.storage import Store
from tests.support.paths import REPO
from tests.support.servers import S3Server

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

# Dedup in 2 partitions rather than the default 16, in every run here: still partition tasks for the cluster's 2
# workers (a worker is killed in one of them below), but 8 times fewer tasks (each 50-120 ms on a process pool or a
# cluster) and index objects on S3: the module took 106 s with 16, 66 s with 2. What a run decides does not depend
# on the number (tests/dedup/test_graph.py).
PARTITIONS = {"dedup": {"partitions": 2}}
# Everything a run decides; run_id and ingest_date differ between runs by design.
COMPARED = ["doc_id", "source_uri", "url", "title", "text", "lang", "content_hash", "dup_cluster", "is_duplicate",
            "quality_score", "n_chars"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, seeds_dir: Path, corpora: Path) -> Path:
    """Seeds, a few HTML pages, an exact copy and a near copy: several shards, duplicates of both kinds."""
    root = tmp_path_factory.mktemp("source")
    for path in sorted(seeds_dir.iterdir()):
        shutil.copy(path, root / path.name)
    for path in sorted((corpora / "scrapinghub_aeb" / "html").glob("*.html"))[:5]:
        shutil.copy(path, root / path.name)
    first = sorted(seeds_dir.iterdir())[1]
    shutil.copy(first, root / "copy_exact.txt")
    text = first.read_text(encoding="utf-8")
    near = text.replace(" the ", " a ", 2) + "\nOne more closing line.\n"
    (root / "copy_near.txt").write_text(near, encoding="utf-8")
    (root / "broken.jsonl").write_text('{"text": "fine but short"}\nnot json\n', encoding="utf-8")
    return root


def _ingest(source: Path | str, lake: Path | str, runner: dict[str, Any],
            storage: dict[str, Any] | None = None) -> dict[str, Any]:
    from flows.ingest import ingest

    config = IngestConfig.model_validate({"source": str(source), "lake": str(lake), "runner": runner,
                                          "read": {"shard_files": 3}, "storage": storage or {}, **PARTITIONS})
    return ingest(config)


@pytest.fixture(scope="module")
def reference(source: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The counts and lake of an undisturbed run on this machine, which every cluster run must equal."""
    lake = tmp_path_factory.mktemp("reference") / "lake"
    return _ingest(source, lake, {"kind": "process", "workers": 2}), lake


def _bucket_documents(lake: str) -> pd.DataFrame:
    """The compared columns of a bucket lake's documents, read by duckdb through the store's filesystem."""
    store = Store(lake)
    connection = duckdb.connect()
    connection.register_filesystem(store.fs)
    frame = connection.sql(f"select * from read_parquet('{store.url()}/documents/**/*.parquet', "
                           "hive_partitioning=true)").df()
    return frame[COMPARED].sort_values("source_uri").reset_index(drop=True)


def _table(lake: Path, name: str, columns: list[str]) -> pd.DataFrame:
    frame = duckdb.sql(f"select * from read_parquet('{lake}/{name}/**/*.parquet', hive_partitioning=true)").df()
    return frame[columns].sort_values("source_uri").reset_index(drop=True)


def test_a_dask_cluster_by_address_writes_the_same_lake_as_a_local_run(
        source: Path, tmp_path: Path, reference: tuple[dict[str, Any], Path]) -> None:
    local, local_lake = reference
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = _ingest(source, tmp_path / "dask", {"kind": "dask", "dask_address": cluster.scheduler_address})
        assert len(cluster.workers) == 2
        # Every shard ran as a task on this cluster, not in the flow's process.
        assert cluster.scheduler.task_prefixes["shard_task"].state_counts["memory"] == remote["shards"] > 1
    assert remote == local
    assert local["documents"] >= 10 and local["duplicates"] >= 2 and local["rejects"] >= 1
    docs_local = _table(local_lake, "documents", COMPARED)
    docs_dask = _table(tmp_path / "dask", "documents", COMPARED)
    pd.testing.assert_frame_equal(docs_dask, docs_local)
    assert docs_local["is_duplicate"].sum() >= 2
    reject_columns = ["unit_id", "source_uri", "stage", "reason"]
    pd.testing.assert_frame_equal(_table(tmp_path / "dask", "rejects", reject_columns),
                                  _table(local_lake, "rejects", reject_columns))


def test_dask_workers_without_a_shared_disk_write_the_same_lake_from_a_bucket_as_a_local_run(
        source: Path, tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch,
        reference: tuple[dict[str, Any], Path]) -> None:
    """SOURCE and the lake on S3: the workers' scratch folder is not the flow's; they share only the store."""
    raw, corpus = s3_server.bucket("dask-raw"), s3_server.bucket("dask-corpus")
    s3_server.upload_tree(source, f"{raw}/crawl")
    local, local_lake = reference
    monkeypatch.setenv("SIFTLAKE_SCRATCH", str(tmp_path / "flow-scratch"))
    storage = {"cache_dir": str(tmp_path / "flow-cache")}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={"SIFTLAKE_SCRATCH": str(tmp_path / "worker-scratch")}) as cluster:
        remote = _ingest(f"{raw}/crawl", f"{corpus}/lake", {"kind": "dask", "dask_address": cluster.scheduler_address},
                         storage)
        assert cluster.scheduler.task_prefixes["shard_task"].state_counts["memory"] == remote["shards"] > 1
    # The workers staged every shard in their own scratch folder; the flow took them from the store.
    assert len(list((tmp_path / "worker-scratch").rglob("shard-*[0-9].parquet"))) == remote["shards"]
    assert {k: v for k, v in remote.items() if not k.startswith("index_")} == \
        {k: v for k, v in local.items() if not k.startswith("index_")}
    pd.testing.assert_frame_equal(_bucket_documents(f"{corpus}/lake"), _table(local_lake, "documents", COMPARED))


def test_a_worker_killed_mid_dedup_on_a_bucket_lake_costs_the_run_nothing(
        source: Path, tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch,
        reference: tuple[dict[str, Any], Path]) -> None:
    """kill -9 of a Dask worker in a partition task of dedup: the cluster runs that task again elsewhere, and the
    lake is the one an undisturbed run writes (no row twice, none lost, the same decisions)."""
    raw, corpus = s3_server.bucket("kill-raw"), s3_server.bucket("kill-corpus")
    s3_server.upload_tree(source, f"{raw}/crawl")
    undisturbed, undisturbed_lake = reference
    monkeypatch.setenv("SIFTLAKE_SCRATCH", str(tmp_path / "flow-scratch"))
    killed = tmp_path / "killed"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={"SIFTLAKE_SCRATCH": str(tmp_path / "worker-scratch"), "SIFTLAKE_FAULT": "dedup:link",
                           "SIFTLAKE_FAULT_ONCE": str(killed)}) as cluster:
        counts = _ingest(f"{raw}/crawl", f"{corpus}/lake", {"kind": "dask", "dask_address": cluster.scheduler_address},
                         {"cache_dir": str(tmp_path / "flow-cache")})
    assert killed.exists(), "a worker died in a partition task"
    assert {k: v for k, v in counts.items() if not k.startswith("index_")} == \
        {k: v for k, v in undisturbed.items() if not k.startswith("index_")}
    docs = _bucket_documents(f"{corpus}/lake")
    assert docs["doc_id"].is_unique
    pd.testing.assert_frame_equal(docs, _table(undisturbed_lake, "documents", COMPARED))


@task(name="where", cache_policy=NO_CACHE, persist_result=False)
def machine_running(part: int) -> str:
    from distributed import get_worker

    return str(get_worker().address).split("://")[1].rsplit(":", 1)[0]


def test_a_partitions_tasks_go_to_the_same_machine_every_run(tmp_path: Path) -> None:
    """On a cluster of two machines (workers on 127.0.0.1 and 127.0.0.2), each partition's tasks run on its home
    machine, run after run, so that machine's cache keeps the partition; both machines get partitions."""
    from prefect import flow
    from prefect_dask.task_runners import DaskTaskRunner

    from flows.ingest import _home_machines, _per_partition
    from flows.run_dedup import home_machine

    dask = [str(Path(sys.executable).parent / "dask")]
    scheduler_file = tmp_path / "scheduler.json"
    # Work stealing off: it moves a waiting task to an idle machine (the placement is a preference), which these
    # 8 tasks of a few milliseconds on one thread a machine would invite; real partition tasks take seconds.
    no_stealing = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": "False"}
    processes = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(scheduler_file)], stderr=subprocess.DEVNULL,
                                  env=no_stealing)]
    try:
        for host in ("127.0.0.1", "127.0.0.2"):
            processes.append(subprocess.Popen([*dask, "worker", "--host", host, "--nthreads", "1", "--no-dashboard",
                                               "--scheduler-file", str(scheduler_file)], stderr=subprocess.DEVNULL,
                                              cwd=REPO))
        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address

        @flow(name="placement")
        def placement() -> dict[int, str]:
            with DaskTaskRunner(address=address) as runner:
                on_home = _home_machines(runner)
                futures = _per_partition(runner, machine_running, {p: {"part": p} for p in range(8)}, on_home)
                return {part: future.result() for part, future in futures.items()}

        first, second = placement(), placement()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    hosts = ["127.0.0.1", "127.0.0.2"]
    assert first == second == {part: home_machine(part, hosts) for part in range(8)}
    assert set(first.values()) == set(hosts)

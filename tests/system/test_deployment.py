"""`prefect deployment run` against a real Prefect server on 127.0.0.1 with a process worker."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.support.paths import REPO
from tests.support.servers import S3Server, free_port, stop_group, wait_for_http

pytestmark = pytest.mark.server
BIN = Path(sys.executable).parent


def wait_healthy(url: str, timeout_s: float) -> None:
    wait_for_http(f"{url}/health", timeout_s, "the Prefect server")


class Project:
    """A copy of the project in a temp folder, with its own Prefect server and home."""

    def __init__(self, root: Path, api_url: str, env: dict[str, str]) -> None:
        self.root, self.api_url, self.env = root, api_url, env

    def prefect(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "prefect"), "--no-prompt", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def start(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        handle = open(self.root / log, "wb")  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen([str(BIN / "prefect"), *args], cwd=self.root, env=self.env, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("project")
    for name in ("flows", "seeds"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "prefect.yaml", root)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(root / ".prefect"), "PREFECT_API_URL": api_url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "2",
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5"}
    server = Project(root, api_url, env).start("server", "start", "--host", "127.0.0.1", "--port", str(port),
                                               "--no-ui", log="server.log")
    try:
        wait_healthy(api_url, 120)
        yield Project(root, api_url, env)
    finally:
        stop_group(server)


@pytest.fixture(scope="module")
def deployed(project: Project) -> Iterator[Project]:
    for pool in ("siftlake", "siftlake-ephemeral"):
        created = project.prefect("work-pool", "create", pool, "--type", "process")
        assert created.returncode == 0, created.stdout + created.stderr
    deployed = project.prefect("deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    worker = project.start("worker", "start", "--pool", "siftlake", log="worker.log")
    try:
        yield project
    finally:
        stop_group(worker)


async def _artifacts(api_url: str) -> dict[str, object]:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        found = await client.read_artifacts()
        return {a.key: a.data for a in found if a.key}


async def _scheduled_runs(api_url: str, deployment: str) -> list[object]:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    async with PrefectClient(api_url) as client:
        return list(await client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
        ))


def test_deployment_run_ingests_the_seeds_and_publishes_artifacts(deployed: Project) -> None:
    result = deployed.prefect("deployment", "run", "ingest/seeds", "--watch", "--watch-timeout", "400", timeout=450)
    assert result.returncode == 0, result.stdout[-3000:] + (deployed.root / "worker.log").read_text()[-3000:]
    assert "Completed" in result.stdout
    rows = duckdb.sql(f"select count(*), count(distinct doc_id) from read_parquet("
                      f"'{deployed.root}/lake/documents/**/*.parquet', hive_partitioning=true)").fetchall()
    assert rows == [(5, 5)]
    artifacts = asyncio.run(_artifacts(deployed.api_url))
    assert {"ingest-counts", "ingest-report", "ingest-progress"} <= set(artifacts)
    counts = artifacts["ingest-counts"]
    table = json.loads(counts) if isinstance(counts, str) else counts
    assert {"what": "documents written", "count": 5} in table
    assert "Quality score" in str(artifacts["ingest-report"])


def test_unknown_parameter_keys_fail_with_a_clear_message(deployed: Project) -> None:
    result = deployed.prefect("deployment", "run", "ingest/seeds", "--params", '{"config": {"sorce": "seeds"}}')
    assert result.returncode != 0
    assert "sorce" in result.stdout + result.stderr


def test_the_inbox_deployment_is_scheduled_by_the_server(deployed: Project) -> None:
    deadline = time.monotonic() + 60
    runs: list[object] = []
    while time.monotonic() < deadline and not runs:
        runs = asyncio.run(_scheduled_runs(deployed.api_url, "inbox"))
        time.sleep(2)
    assert runs, "the scheduler created no run for the cron schedule of ingest/inbox"


def test_a_worker_with_a_fresh_working_folder_ingests_a_bucket_into_a_lake_on_the_store(
        deployed: Project, s3_server: S3Server, tmp_path: Path) -> None:
    raw, corpus, code = (s3_server.bucket(name) for name in ("fresh-raw", "fresh-corpus", "fresh-code"))
    s3_server.upload_tree(REPO / "seeds", f"{raw}/crawl/day1")
    shutil.copytree(REPO / "flows", tmp_path / "code" / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    s3_server.upload_tree(tmp_path / "code", f"{code}/siftlake")  # what a CI job would push
    env = {**deployed.env, **s3_server.env, "SIFTLAKE_CODE_URL": f"{code}/siftlake"}
    deploy = subprocess.run([str(BIN / "prefect"), "--no-prompt", "deploy", "--name", "bucket"], cwd=deployed.root,
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    worker_env = {**env, "SIFTLAKE_CACHE": str(fresh / ".cache"), "SIFTLAKE_SCRATCH": str(fresh / ".scratch")}
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "siftlake-ephemeral"],
                                  cwd=fresh, env=worker_env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        params = json.dumps({"config": {"source": f"{raw}/crawl/day1", "lake": f"{corpus}/lake"}})
        result = subprocess.run([str(BIN / "prefect"), "--no-prompt", "deployment", "run", "ingest/bucket",
                                 "--params", params, "--watch", "--watch-timeout", "400"], cwd=deployed.root,
                                env=env, capture_output=True, text=True, timeout=450, check=False)
    finally:
        stop_group(worker)
    assert result.returncode == 0, result.stdout[-3000:] + (tmp_path / "worker.log").read_text()[-3000:]
    assert "Pulled code from" in (tmp_path / "worker.log").read_text()
    frame = pd.read_parquet(f"{corpus}/lake/documents")
    assert len(frame) == 5 and frame["doc_id"].is_unique
    assert sorted(p.name for p in fresh.iterdir() if not p.name.startswith(".")) == [], "nothing lands on the worker"

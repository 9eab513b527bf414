"""The lake and SOURCE on every store: one conformance suite run on a local folder, S3 (moto), Cloud Storage
(fake-gcs-server) and Azure Blob (Azurite), each on 127.0.0.1, with the real CLI and the real flow.

Tests that take ``store`` run on the four, those that take ``object_store`` on the three object stores (faults
injected by a proxy in front of each server); a store added later gets a server fixture and a line in conftest's
STORE_SERVERS, and passes the same tests. The rest are one store's."""

from __future__ import annotations

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
import pandas as pd
import pytest

from flows import lake as lakefs
from flows.config import IngestConfig, StorageConfig
from flows.dedup import DedupConfig
from flows.dedup.index.files import doc_id_keys
from flows.dedup.index.layout import partition_of
from flows.lake.layout import RunPaths
from flows.run_dedup import KnownRows
from flows.storage import StorageError, Store
from flows.storage.errors import settings
from tests.support.paths import CORPORA
from tests.support.servers import (
    AZURITE_KEY,
    AzureServer,
    FaultyProxy,
    S3Server,
    StoreUnderTest,
    azurite_connection_string,
    environment,
)

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]
SMALL_SHARDS = {"read": {"shard_files": 1}, "runner": {"kind": "thread", "workers": 1, "shards_in_flight": 1}}
# The lake's near-duplicate index in 2 partitions rather than the default 16: a run on an object store then writes
# and moves 8 times fewer index objects (a run of the 5 seeds took 8 s on S3 with 16, 3 s with 2), and nothing
# these tests assert depends on the number (the index counts are of segment names, one a run, whatever the
# partitions). The first test keeps the defaults, so each store still runs a lake of 16 partitions.
FEW_PARTITIONS = {"dedup": {"partitions": 2}}


def ingest(source: str, lake: str, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    from flows.ingest import ingest as ingest_flow

    storage = {"cache_dir": str(tmp_path / "cache"), "scratch_dir": str(tmp_path / "scratch"),
               **overrides.pop("storage", {})}
    config = IngestConfig.model_validate({"source": source, "lake": lake, "storage": storage, **FEW_PARTITIONS,
                                          **overrides})
    return ingest_flow(config)


def cli(args: list[str], api_url: str, home: Path, config: dict[str, Any] | None = FEW_PARTITIONS,
        env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The CLI's ``ingest`` in a process of its own, with ``config`` (None: the defaults, no ``--config``)."""
    home.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "flows.cli", "ingest", *args, "--json"]
    if config is not None:
        config_file = home / f"config-{time.monotonic_ns()}.json"
        config_file.write_text(json.dumps(config))
        command += ["--config", str(config_file)]
    environment = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api_url,
                   "SIFTLAKE_CACHE": str(home / "cache"), "SIFTLAKE_SCRATCH": str(home / "scratch"), **(env or {})}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
                            start_new_session=True)


def finished(run: subprocess.Popen[str], timeout: float = 400) -> dict[str, Any]:
    out, err = run.communicate(timeout=timeout)
    assert run.returncode == 0, err[-3000:]
    return dict(json.loads(out.strip().splitlines()[-1]))


def documents(store: StoreUnderTest, lake: str) -> pd.DataFrame:
    """The lake's documents as pandas reads them from its store (listings fresh each time)."""
    return pd.read_parquet(f"{lake}/documents", storage_options=store.storage_options() or None)


def day_one(tmp_path: Path, seeds_dir: Path) -> Path:
    """The seeds, an exact copy, a JSONL file with a good and a broken line."""
    folder = tmp_path / "day1"
    shutil.copytree(seeds_dir, folder)
    seeds = sorted(seeds_dir.iterdir())
    shutil.copy(seeds[0], folder / "copy_of_first.txt")
    story = seeds[1].read_text(encoding="utf-8")
    (folder / "feed.jsonl").write_text(json.dumps({"text": story[:1500], "url": "https://example.org/a"})
                                       + "\nnot json\n", encoding="utf-8")
    return folder


def near_copies(tmp_path: Path, seeds_dir: Path) -> Path:
    folder = tmp_path / "day2"
    folder.mkdir()
    for path in sorted(seeds_dir.iterdir())[:3]:
        text = path.read_text(encoding="utf-8")
        (folder / f"again-{path.name}").write_text(text.replace(" the ", " a ", 3) + "\nA closing line.\n",
                                                   encoding="utf-8")
    return folder


def with_pages(tmp_path: Path, seeds_dir: Path) -> Path:
    """Day one (the seeds, a copy, a JSONL file) and 12 of scrapinghub's pages."""
    folder = day_one(tmp_path, seeds_dir)
    (folder / "pages").mkdir()
    for page in sorted((CORPORA / "scrapinghub_aeb" / "html").glob("*.html"))[:12]:
        shutil.copyfile(page, folder / "pages" / page.name)
    return folder


def test_a_run_from_a_store_to_a_store_lands_every_unit_and_every_reader_reads_it(
        store: StoreUnderTest, tmp_path: Path, seeds_dir: Path, prefect_server: str) -> None:
    raw, corpus = store.bucket("raw"), store.bucket("corpus")
    store.upload_tree(with_pages(tmp_path, seeds_dir), f"{raw}/crawl/day1")
    lake = f"{corpus}/lake"
    first = finished(cli([f"{raw}/crawl/day1", "--lake", lake], prefect_server, tmp_path / "home", config=None))
    assert (first["units"], first["documents"], first["rejects"], first["duplicates"]) == (20, 19, 1, 2)

    frame = documents(store, lake)
    assert len(frame) == first["documents"] and frame["doc_id"].is_unique
    assert set(frame["source_uri"]) >= {"feed.jsonl#L1", "copy_of_first.txt", "000_23aa8dcb5aa22d11.txt"}
    assert sum(uri.startswith("pages/") for uri in frame["source_uri"]) == 12
    connection = duckdb.connect()
    if store.server is not None:
        connection.register_filesystem(store.filesystem())
    rejects = connection.sql(f"select reason from read_parquet('{lake}/rejects/**/*.parquet', "
                             "hive_partitioning=true)").fetchall()
    assert rejects == [("jsonl_invalid_json",)]

    again = finished(cli([f"{raw}/crawl/day1", "--lake", lake], prefect_server, tmp_path / "home", config=None))
    assert again["documents"] == 0
    if store.server is not None:  # a local file is read again (no download): its units are known, not kept
        assert again["files_unchanged"] == 19 and again["units"] == 0, "unchanged objects are not downloaded again"
    assert len(documents(store, lake)) == first["documents"]


def test_a_bucket_to_bucket_run_finds_near_copies_from_an_earlier_day(
        object_store: StoreUnderTest, tmp_path: Path, seeds_dir: Path, prefect_server: str) -> None:
    raw, corpus = object_store.bucket("raw"), object_store.bucket("corpus")
    object_store.upload_tree(seeds_dir, f"{raw}/crawl/day1")
    lake = f"{corpus}/lake"
    assert ingest(f"{raw}/crawl/day1", lake, tmp_path)["documents"] == 5
    object_store.upload_tree(near_copies(tmp_path, seeds_dir), f"{raw}/crawl/day2")
    later = finished(cli([f"{raw}/crawl/day2", "--lake", lake], prefect_server, tmp_path / "home"))
    assert later["documents"] == 3 and later["duplicates"] == 3
    frame = documents(object_store, lake)
    copies = frame[frame["source_uri"].str.startswith("again-")]
    clusters = frame.set_index("source_uri")["dup_cluster"]
    for row in copies.itertuples():
        assert row.is_duplicate and row.dup_cluster == clusters[row.source_uri.removeprefix("again-")]


def test_a_glob_over_a_bucket_picks_the_matching_objects(
        store: StoreUnderTest, tmp_path: Path, seeds_dir: Path) -> None:
    raw, corpus = store.bucket("raw"), store.bucket("corpus")
    store.upload_tree(seeds_dir, f"{raw}/crawl/2026-12-01/a")
    store.upload_tree(seeds_dir, f"{raw}/crawl/2026-11-30/a")
    counts = ingest(f"{raw}/crawl/2026-12-*/**/*.txt", f"{corpus}/lake", tmp_path)
    assert counts["units"] == 5
    assert sorted(documents(store, f"{corpus}/lake")["source_uri"]) == sorted(
        f"2026-12-01/a/{p.name}" for p in seeds_dir.iterdir())


def test_the_index_cache_downloads_only_segments_it_lacks(
        object_store: StoreUnderTest, tmp_path: Path, seeds_dir: Path) -> None:
    lake = f"{object_store.bucket('corpus')}/lake"
    seeds = sorted(seeds_dir.iterdir())
    for number, path in enumerate(seeds[:3]):
        (tmp_path / f"src{number}").mkdir()
        shutil.copy(path, tmp_path / f"src{number}" / path.name)
    machine_a = {"cache_dir": str(tmp_path / "cache-a")}
    machine_b = {"cache_dir": str(tmp_path / "cache-b")}
    first = ingest(str(tmp_path / "src0"), lake, tmp_path, storage=machine_a)
    assert first["index_segments"] == 0 and first["index_bytes_downloaded"] == 0
    on_b = ingest(str(tmp_path / "src1"), lake, tmp_path, storage=machine_b)
    assert on_b["index_segments"] == 1 and on_b["index_bytes_downloaded"] > 0
    back_on_a = ingest(str(tmp_path / "src2"), lake, tmp_path, storage=machine_a)
    # Machine A cached its own run's segment when it committed: it downloads only B's.
    assert back_on_a["index_segments"] == 2 and 0 < back_on_a["index_bytes_downloaded"] < back_on_a["index_bytes"]
    shutil.rmtree(tmp_path / "cache-a")  # safe to delete: the next run fetches what it needs
    rerun = ingest(str(tmp_path / "src2"), lake, tmp_path, storage=machine_a)
    assert rerun["index_segments"] == 3 and rerun["documents"] == 0
    # A row the lake holds gets the lake's decision from its home partition alone (the known-units store says it
    # is there); an unknown one opens nothing.
    held = documents(object_store, lake).iloc[0]
    store = Store(lake, object_store.storage_options())
    rows = KnownRows(RunPaths(store, "lookup", "2026-12-04", str(tmp_path / "scratch-c")),
                     DedupConfig(**FEW_PARTITIONS["dedup"]), StorageConfig(cache_dir=str(tmp_path / "cache-c")))
    assert not rows.decisions_of(["not-in-the-lake"]).found.any() and not (tmp_path / "cache-c").exists()
    known = rows.decisions_of([held["doc_id"], "not-in-the-lake"])
    assert known.found.tolist() == [True, False] and known.dup_cluster[0] == held["dup_cluster"]
    home = partition_of(doc_id_keys([held["doc_id"]]), 2)[0]
    cached = sorted(p.name for p in (tmp_path / "cache-c").glob("*/_index/p*"))
    assert cached == [f"p{home:04d}"]


@pytest.mark.alone
def test_a_killed_run_on_a_bucket_resumes_on_another_machine_without_duplicate_rows(
        object_store: StoreUnderTest, tmp_path: Path, seeds_dir: Path, prefect_server: str) -> None:
    lake = f"{object_store.bucket('corpus')}/lake"
    source = tmp_path / "many"
    source.mkdir()
    seeds = sorted(seeds_dir.iterdir())
    # 12 files, one a shard: killed once 3 are staged (3 or 4 here, a second after its start), the run has 8 or
    # more left to do, and the next run resumes it (30 files took the next run 5-7 s longer, for nothing more).
    for n in range(12):
        (source / f"doc-{n:03d}.txt").write_text(f"Edition {n} of the daily digest.\n\n{seeds[n % 5].read_text()}")
    store = Store(lake)
    first = cli([str(source), "--lake", lake], prefect_server, tmp_path / "machine-1",
                {**FEW_PARTITIONS, **SMALL_SHARDS, "storage": {"lock_lease_s": 5}})
    deadline = time.monotonic() + 240

    def staged() -> list[str]:
        return [k for k in store.files(lakefs.STAGING) if k.endswith(".json") and "/shards/" in k]

    while time.monotonic() < deadline and len(staged()) < 3:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(30)
    done = staged()
    assert 3 <= len(done) < 12, "the run must be killed mid-way for this test to mean anything"
    assert not store.files(lakefs.DOCUMENTS), "a killed run must leave no visible rows"
    killed_run = done[0].split("/")[1]

    # Another machine: no scratch, no cache; the lock of the dead run is taken over once its lease expires.
    second = finished(cli([str(source), "--lake", lake], prefect_server, tmp_path / "machine-2",
                          {**FEW_PARTITIONS, **SMALL_SHARDS, "lock_wait_s": 120, "storage": {"lock_lease_s": 5}}))
    assert second["shards"] == 12 and second["shards_resumed"] >= len(done)
    frame = documents(object_store, lake)
    assert len(frame) == 12 and frame["doc_id"].is_unique
    assert set(frame["run_id"]) == {killed_run}
    assert not store.files(lakefs.STAGING) and not store.exists(lakefs.LOCK)


def test_two_runs_on_two_processes_never_write_a_lake_at_once(
        store: StoreUnderTest, tmp_path: Path, seeds_dir: Path, prefect_server: str) -> None:
    lake = f"{store.bucket('corpus')}/lake"
    with lakefs.lake_lock(lake, 0):
        refused = cli([str(seeds_dir), "--lake", lake], prefect_server, tmp_path / "home")
        _, err = refused.communicate(timeout=300)
    assert refused.returncode == 1
    assert f"the lake {lake} is being written by pid {os.getpid()}" in err and "wait for it to finish" in err
    assert "Traceback" not in err

    runs = [cli([str(seeds_dir), "--lake", lake], prefect_server, tmp_path / f"home{i}",
                {**FEW_PARTITIONS, "lock_wait_s": 240})
            for i in range(2)]
    totals = sorted(finished(run)["documents"] for run in runs)
    assert totals == [0, 5]
    assert len(documents(store, lake)) == 5


@pytest.mark.alone
def test_a_lease_is_renewed_while_held_and_taken_over_only_once_expired(object_store: StoreUnderTest) -> None:
    store = Store(f"{object_store.bucket('corpus')}/lake")
    dead = {"owner": "pid 1 on gone-host", "since": "2026-01-01T00:00:00Z", "expires": time.time() + 3600}
    store.write_bytes(lakefs.LOCK, json.dumps(dead).encode())
    with pytest.raises(lakefs.LakeBusyError, match="being written by pid 1 on gone-host since 2026-01-01"), \
            lakefs.lake_lock(store, 0):
        pass
    store.write_bytes(lakefs.LOCK, json.dumps({**dead, "expires": time.time() - 1}).encode())
    with lakefs.lake_lock(store, 0, lease_s=6) as lease:
        assert lease is not None
        first = json.loads(store.read_bytes(lakefs.LOCK))
        assert first["owner"].startswith(f"pid {os.getpid()}")
        time.sleep(2.5)  # one renewal (every lease_s / 3)
        assert json.loads(store.read_bytes(lakefs.LOCK))["expires"] > first["expires"]
        lease.check()
        # Another run takes the lock over (as if this one had stalled past its lease): this one must not commit.
        store.write_bytes(lakefs.LOCK, json.dumps({**dead, "owner": "pid 2 on other-host"}).encode())
        time.sleep(2.5)
        with pytest.raises(lakefs.LakeBusyError, match="took over"):
            lease.check()
    assert json.loads(store.read_bytes(lakefs.LOCK))["owner"] == "pid 2 on other-host", "a lost lock is not deleted"


def refusal(args: list[str], env: dict[str, str] | None = None) -> tuple[str, float]:
    """The one line a CLI run that cannot begin prints, and how long it took."""
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "flows.cli", "ingest", *args], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr[-2000:]
    return lines[0], time.monotonic() - start


# For each object store: settings that point its clients at an endpoint where nothing listens.
UNREACHABLE = {"s3": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "gs": {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:9"},
               "az": {"AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string(9)}}


def test_a_missing_local_source_is_refused_at_once(tmp_path: Path) -> None:
    line, _ = refusal([str(tmp_path / "missing"), "--lake", str(tmp_path / "lake")])
    assert "does not exist" in line


def test_runs_that_cannot_begin_say_why_at_once_in_one_line(object_store: StoreUnderTest, seeds_dir: Path,
                                                            tmp_path: Path) -> None:
    kind, noun = object_store.kind, "container" if object_store.kind == "az" else "bucket"
    started = time.monotonic()
    with pytest.raises(StorageError, match=rf"{kind}://no-such-bucket/lake: the {noun} 'no-such-bucket' does not"):
        Store(f"{kind}://no-such-bucket/lake").check_reachable()
    assert time.monotonic() - started < 2
    line, _ = refusal([str(seeds_dir), "--lake", f"{kind}://no-such-bucket/lake"])
    assert line.endswith(f"{kind}://no-such-bucket/lake: the {noun} 'no-such-bucket' does not exist; check the "
                         f"name and the endpoint ({settings(kind + '://')[0]})"), line
    line, _ = refusal([f"{kind}://no-such-bucket/crawl", "--lake", str(tmp_path / "lake")])
    assert f"{kind}://no-such-bucket/crawl" in line
    line, took = refusal([str(seeds_dir), "--lake", f"{kind}://corpus/lake"], UNREACHABLE[kind])
    assert f"{kind}://corpus/lake: cannot be listed, cannot reach the object store" in line and took < 15


def test_wrong_credentials_are_refused_at_once_naming_the_uri(azure_server: AzureServer, seeds_dir: Path) -> None:
    azure_server.bucket("corpus")
    wrong = {"AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string(azure_server.port, "d3Jvbmc=" * 11)}
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"az://corpus/lake: cannot be listed, access denied"), \
            environment(wrong):
        Store("az://corpus/lake").check_reachable()
    assert time.monotonic() - started < 2
    line, _ = refusal([str(seeds_dir), "--lake", "az://corpus/lake"], wrong)
    assert "az://corpus/lake: cannot be listed, access denied" in line and "AZURE_STORAGE_CONNECTION_STRING" in line


# For each object store: storage options with a secret in them, what a manifest shows of them, the secret.
SECRETS = {
    "s3": ({"key": "testing", "secret": "env:TEAM_SECRET"}, {"key": "***", "secret": "env:TEAM_SECRET"}, "testing"),
    "gs": ({"token": "anon"}, {"token": "***"}, '"anon"'),  # the emulator's: a real one is a key file's path
    "az": ({"account_name": "devstoreaccount1", "account_key": "env:TEAM_SECRET"},
           {"account_name": "devstoreaccount1", "account_key": "env:TEAM_SECRET"}, AZURITE_KEY),
}


def test_secrets_in_storage_options_stay_out_of_the_manifest(
        object_store: StoreUnderTest, tmp_path: Path, seeds_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    options, shown, secret = SECRETS[object_store.kind]
    lake = f"{object_store.bucket('corpus')}/lake"
    monkeypatch.setenv("TEAM_SECRET", "testing" if object_store.kind == "s3" else AZURITE_KEY)
    ingest(str(seeds_dir), lake, tmp_path, storage={"options": {**object_store.storage_options(), **options}})
    manifest = lakefs.read_manifests(Store(lake))[0]
    kept = {name: value for name, value in manifest["config"]["storage"]["options"].items() if name in options}
    assert kept == shown
    assert secret not in json.dumps(manifest)


def test_a_store_that_ignores_conditional_writes_is_refused(
        s3_server: S3Server, tmp_path: Path, seeds_dir: Path) -> None:
    s3_server.bucket("corpus")
    proxy = FaultyProxy(s3_server.endpoint, unconditional=True)  # an S3-compatible server that ignores them
    try:
        with pytest.raises(StorageError, match=r"s3://corpus/unsafe: this store does not honour conditional writes "
                                               r"\(a second create-only write replaced the object; a write on a "
                                               r"stale version was accepted\)"):
            ingest(str(seeds_dir), "s3://corpus/unsafe", tmp_path,
                   storage={"options": {"endpoint_url": proxy.endpoint}})
    finally:
        proxy.close()
    assert Store("s3://corpus/unsafe").files() == [], "nothing is written, the probe is deleted"


def test_both_tables_read_back_when_no_run_gave_them_rows(tmp_path: Path, seeds_dir: Path) -> None:
    lake = tmp_path / "lake"
    ingest(str(seeds_dir), str(lake), tmp_path)
    rejects = duckdb.sql(f"select count(*) from read_parquet('{lake}/rejects/**/*.parquet', "
                         "hive_partitioning=true)").fetchall()
    assert rejects == [(0,)]
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "empty.txt").write_text("")
    other = tmp_path / "other-lake"
    ingest(str(junk), str(other), tmp_path)
    documents = duckdb.sql(f"select count(*) from read_parquet('{other}/documents/**/*.parquet', "
                           "hive_partitioning=true)").fetchall()
    assert documents == [(0,)]
    ingest(str(seeds_dir), str(lake), tmp_path)  # a run that adds nothing adds no files either
    assert len(list((lake / "rejects").rglob("*.parquet"))) == 1


def faulty_proxy(store: StoreUnderTest) -> tuple[FaultyProxy, dict[str, Any]]:
    """A proxy that fails on purpose in front of ``store``'s server, and storage options that reach it through it."""
    assert store.server is not None
    proxy = FaultyProxy(f"http://127.0.0.1:{store.server.port}")
    return proxy, store.server.options_via(proxy.port)


# Options with which a call to a store that is gone fails in a second or two (one retry), as a user may set them.
# flows.storage's defaults give up on a call in 4 to 10 s (tests/storage/test_filesystems.py), on this run in 30
# to 45 s: 3 tries of the shard, and the lease's last renewal. On S3, botocore's 2 attempts are the one retry; s3fs's
# own loop (``retries``, 2 by default) would run them twice over.
ONE_RETRY = {"s3": {"retries": 1, "config_kwargs": {"retries": {"max_attempts": 2}}}, "gs": {"retries": 2},
             "az": {"retry_total": 1, "initial_backoff": 0, "increment_base": 1}}


def test_transient_store_errors_are_retried_and_a_store_that_goes_away_fails_the_run_for_a_later_resume(
        object_store: StoreUnderTest, tmp_path: Path, seeds_dir: Path) -> None:
    lake, source, seeds = f"{object_store.bucket('corpus')}/lake", tmp_path / "letters", sorted(seeds_dir.iterdir())
    source.mkdir()
    for n in range(6):
        (source / f"doc-{n}.txt").write_text(f"Issue {n} of the weekly letter.\n\n{seeds[n % 5].read_text()}")
    proxy, through_proxy = faulty_proxy(object_store)
    storage = {"lock_lease_s": 5, "options": {**through_proxy, **ONE_RETRY[object_store.kind]}}
    try:
        proxy.go_away_after(r"/_staging/.+/shards/shard-\d+\.json", more=4)  # a few requests after its first shard
        start = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017 - whichever error the store's absence surfaces as
            ingest(str(source), lake, tmp_path, storage=storage, **SMALL_SHARDS)
        assert time.monotonic() - start < 120, "a store that went away must fail the run, not hang it"
        staged = [k for k in Store(lake).files(lakefs.STAGING) if k.endswith(".json") and "/shards/" in k]
        assert 0 < len(staged) < 6, "the store must go away mid-run for this test to mean anything"
        # The store is back, and one request in 9 gets a 503 or a dropped connection, 4 in all (each a backoff).
        proxy.down_after, proxy.faults, proxy.every, proxy.limit = 0, 0, 9, 4
        again = ingest(str(source), lake, tmp_path, lock_wait_s=30, storage=storage, **SMALL_SHARDS)
    finally:
        proxy.close()
    assert proxy.faults == 4 and again["documents"] == 6 and again["shards_resumed"] >= len(staged)
    frame = documents(object_store, lake)
    assert len(frame) == 6 and frame["doc_id"].is_unique

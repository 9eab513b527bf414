"""Local servers the tests start: an S3-compatible store, a proxy to it that fails on purpose, a Prefect API."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
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


@contextlib.contextmanager
def prefect_test_api(home: Path) -> Iterator[str]:
    """A Prefect API for this process (a real server on 127.0.0.1, SQLite under ``home``); yields its URL.

    Subprocesses given this URL in PREFECT_API_URL use it instead of starting a temporary server each.
    """
    from prefect.settings import get_current_settings
    from prefect.testing.utilities import prefect_test_harness

    os.environ["PREFECT_HOME"] = str(home)
    with prefect_test_harness(server_startup_timeout=120):
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


class FaultyProxy:
    """An HTTP proxy to the S3 server that fails on purpose: every ``every``-th request gets a 503
    SlowDown or a dropped connection (alternately); ``down`` drops every connection, and so does every
    request after the ``down_after``-th when that is set (the server goes away mid-run), or, with
    ``go_away_after``, a few requests after the first one whose path matches a pattern."""

    def __init__(self, target: str, every: int = 0) -> None:
        self.target = target
        self.every, self.down, self.down_after, self.requests, self.faults = every, False, 0, 0, 0
        self._away_when: tuple[re.Pattern[str], int] | None = None
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self.server.proxy = self  # type: ignore[attr-defined]
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def go_away_after(self, path_pattern: str, more: int) -> None:
        """Go away ``more`` requests after the first request whose path matches ``path_pattern``: a point in the
        run's progress (a shard staged, say), not a count from its start, which its timing would move."""
        self._away_when = (re.compile(path_pattern), more)

    def fault(self, path: str = "") -> str | None:
        """Count a request; say whether it gets a fault: "drop" (the connection), "503", or None."""
        self.requests += 1
        if self._away_when and self._away_when[0].search(path):  # once: setting down_after = 0 brings it back
            self.down_after, self._away_when = self.requests + self._away_when[1], None
        fault = self.every and self.requests % self.every == 0
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

    def log_message(self, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        proxy: FaultyProxy = self.server.proxy  # type: ignore[attr-defined]
        fault = proxy.fault(self.path)
        if fault == "drop":
            self.close_connection = True
            self.connection.close()
            return
        body = self._body()
        if fault == "503":
            self.send_response(503)
            self.send_header("Content-Length", str(len(_SLOW_DOWN)))
            self.end_headers()
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
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "transfer-encoding", "expect", "content-length")}
        # urllib would label a body as a form, which the server then parses away.
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

"""A persistent child process that extracts HTML pages, so a page that hangs can be killed.

Signals cannot interrupt lxml's C code, and stages may run in worker threads where signals are
not delivered at all; the robust limit is datatrove's: do the work in another process, wait for
the answer with a timeout, kill the process when time runs out and start a fresh one for the next
page. The child is started with ``python -m flows._extract_sandbox`` rather than
``multiprocessing`` so it works from daemonic pool workers and never re-imports the caller's
``__main__``. Messages are length-prefixed pickles over the child's stdin/stdout; both ends are
this module, so nothing untrusted is ever unpickled. Only builtin types cross the pipe, so the
two ends agree even when the parent imported this package under another module path.

The child stays alive between pages (starting one costs the trafilatura import, ~1 s), so the
per-page overhead is two pipe transfers of the page and its text.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import IO, Any

from flows._extract_options import HtmlOptions, HtmlResult

_HEADER = struct.Struct("!Q")
_STARTUP_TIMEOUT_S = 120.0
# A fresh child every so many pages bounds what lxml/trafilatura caches can accumulate.
_PAGES_PER_CHILD = 2000
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


class ExtractTimeout(Exception):
    """The page took longer than the limit; the child was killed."""


class SandboxError(Exception):
    """The child died or could not be started; ``str()`` says how."""


def _write_frame(stream: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream: IO[bytes]) -> Any:
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    return pickle.loads(_read_exact(stream, size))


class Sandbox:
    """One extraction child process; not thread-safe (use one per thread, see ``for_thread``)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._pages = 0

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows._extract_sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # trafilatura logs a warning per empty page
            env=env,
        )
        self._proc = proc
        try:
            self._await(proc, _STARTUP_TIMEOUT_S)
        except ExtractTimeout as err:
            raise SandboxError(f"the extraction process did not start ({err})") from err
        if _read_frame_safe(proc) != "ready":
            self.close()
            raise SandboxError("the extraction process did not start")
        return proc

    def _await(self, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        if not ready:
            self.close()
            raise ExtractTimeout(f"no result within {timeout_s:g} s")

    def extract(self, html: str, options: HtmlOptions, timeout_s: float) -> HtmlResult:
        """Extract one page in the child; raise ``ExtractTimeout`` or ``SandboxError``."""
        if self._pages >= _PAGES_PER_CHILD:
            self.close()
        proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
        self._pages += 1
        assert proc.stdin is not None
        try:
            _write_frame(proc.stdin, (html, dataclasses.asdict(options)))
        except (BrokenPipeError, OSError) as err:
            self.close()
            raise SandboxError(f"the extraction process is gone ({err})") from err
        self._await(proc, timeout_s)
        reply: tuple[str, Any] = _read_frame_safe(proc) or ("died", None)
        status, payload = reply
        if status == "ok":
            text, title, url = payload
            return HtmlResult(text, title, url)
        if status == "error":
            raise SandboxError(str(payload))
        code = proc.wait(timeout=5)
        self._proc = None
        raise SandboxError(f"the extraction process died with exit status {code}")

    def __del__(self) -> None:
        # A thread's sandbox dies with the thread (thread-local): its child must not outlive it.
        self.close()

    def close(self) -> None:
        """Kill the child (if any); the next ``extract`` starts a new one."""
        proc, self._proc = self._proc, None
        self._pages = 0
        if proc is None:
            return
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    @property
    def pid(self) -> int | None:
        """The child's process id, when one is running."""
        return self._proc.pid if self._proc is not None else None


def _read_frame_safe(proc: subprocess.Popen[bytes]) -> Any:
    assert proc.stdout is not None
    try:
        return _read_frame(proc.stdout)
    except (EOFError, pickle.UnpicklingError, struct.error):
        return None


_local = threading.local()
_all: weakref.WeakSet[Sandbox] = weakref.WeakSet()
_all_lock = threading.Lock()


def for_thread() -> Sandbox:
    """The calling thread's sandbox: Prefect may run tasks in threads, each needs its own pipe."""
    box: Sandbox | None = getattr(_local, "box", None)
    if box is None:
        box = Sandbox()
        _local.box = box
        with _all_lock:
            _all.add(box)
    return box


@atexit.register
def close_all() -> None:
    """Kill every child this process started (also run at interpreter exit)."""
    with _all_lock:
        boxes = list(_all)
    for box in boxes:
        box.close()


def _serve() -> None:
    """Child main loop: read a page, write its result, until the parent closes stdin."""
    from flows._extract_html import extract_html, warm_up  # the child alone needs trafilatura

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print in a library must not corrupt the frames
    warm_up()  # one-time costs before "ready", so they never count against a page's limit
    _write_frame(stdout, "ready")
    while True:
        try:
            html, fields = _read_frame(stdin)
        except EOFError:
            return
        started = time.perf_counter()
        try:
            reply: tuple[str, object] = ("ok", dataclasses.astuple(extract_html(html, HtmlOptions(**fields))))
        except Exception as err:  # any failure of one page is reported, the loop goes on
            reply = ("error", f"{type(err).__name__}: {err} (after {time.perf_counter() - started:.1f} s)")
        _write_frame(stdout, reply)


if __name__ == "__main__":
    _serve()

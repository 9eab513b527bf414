"""A persistent child process that extracts HTML pages, so a page that hangs can be killed.

Signals cannot interrupt lxml's C code, and stages may run in worker threads where signals are
not delivered at all; the robust limit is datatrove's: do the work in another process, wait for
the answer with a timeout, kill the process when time runs out and start a fresh one for the next
page. The child is started with ``python -m flows.extract.sandbox`` rather than
``multiprocessing`` so it works from daemonic pool workers and never re-imports the caller's
``__main__``. Messages are length-prefixed pickles over the child's stdin/stdout; both ends are
this module, so nothing untrusted is ever unpickled. Only builtin types cross the pipe, so the
two ends agree even when the parent imported this package under another module path.

The child stays alive between pages (starting one costs the trafilatura import, ~1 s), so the
per-page overhead is two pipe transfers of the page and its text. Pages can be queued ahead of their
results (``Sandbox.submit``), so the child need not wait while its caller does other work.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import os
import pickle
import queue
import select
import struct
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import IO, Any

from flows.extract.options import HtmlOptions, HtmlResult

_HEADER = struct.Struct("!Q")
_STARTUP_TIMEOUT_S = 120.0
# A fresh child every so many pages bounds what lxml/trafilatura caches can accumulate.
_PAGES_PER_CHILD = 2000
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class ExtractTimeout(Exception):
    """The page took longer than the limit; the child was killed."""


class SandboxError(Exception):
    """The child died or could not be started; ``str()`` says how."""


def _frame(obj: object) -> bytes:
    """One message as a length-prefixed pickle."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _write_frame(stream: IO[bytes], obj: object) -> None:
    """Write one message and flush it."""
    stream.write(_frame(obj))
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    """Exactly ``size`` bytes from the stream (EOFError when it closes first)."""
    chunks: list[bytes] = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream: IO[bytes]) -> Any:
    """The next message from the stream."""
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    return pickle.loads(_read_exact(stream, size))


class Sandbox:
    """One extraction child process; not thread-safe (use one per thread, see ``for_thread``).

    Pages can be queued ahead (``submit``) and their results taken in order (``result``): the child then
    goes from one page to the next while the caller works on other things, instead of waiting for it.
    A writer thread feeds the child, so ``submit`` never blocks on a full pipe.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._feed: queue.SimpleQueue[bytes | None] | None = None
        self._pages = 0
        self._pending: collections.deque[bytes] = collections.deque()
        """Frames of the pages submitted and not yet answered, oldest first (resent to a new child)."""

    def _start(self) -> subprocess.Popen[bytes]:
        """A new child, ready and fed the queued pages (launched earlier by ``prestart``, or now)."""
        proc = self._proc if self._proc is not None and self._feed is None else self._launch()
        try:
            self._await(proc, _STARTUP_TIMEOUT_S)
        except ExtractTimeout as err:
            raise SandboxError(f"the extraction process did not start ({err})") from err
        if _read_frame_safe(proc) != "ready":
            self.close()
            raise SandboxError("the extraction process did not start")
        self._feed = queue.SimpleQueue()
        assert proc.stdin is not None
        threading.Thread(target=_feed_child, args=(proc.stdin, self._feed), daemon=True).start()
        for frame in self._pending:  # pages the previous child took with it
            self._feed.put(frame)
        return proc

    def _launch(self) -> subprocess.Popen[bytes]:
        """Start the child process without waiting for it (it imports trafilatura, ~1 s)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.extract.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # trafilatura logs a warning per empty page
            env=env,
            # Unbuffered: a buffered reader would read ahead into the next reply, which select() then
            # cannot see, and a queued page would seem to time out.
            bufsize=0,
        )
        self._proc = proc
        return proc

    def _await(self, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
        """Wait until the child has an answer, at most ``timeout_s``; kill it and raise ``ExtractTimeout`` past that."""
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        if not ready:
            self.close()
            raise ExtractTimeout(f"no result within {timeout_s:g} s")

    def _ready(self) -> bool:
        """Whether a child is running and being fed (a launched child is fed once it said "ready")."""
        return self._proc is not None and self._feed is not None and self._proc.poll() is None

    def _running(self) -> subprocess.Popen[bytes]:
        """The live child, started (and fed the queued pages) when there is none or it is not ready yet."""
        if self._ready():
            assert self._proc is not None
            return self._proc
        if self._proc is not None and self._proc.poll() is not None:
            self.close()
        return self._start()

    def submit(self, html: str, options: HtmlOptions) -> None:
        """Queue a page; its result comes from ``result`` after those of the pages queued before it.
        Never raises: a child that cannot start is reported by ``result``, page by page."""
        frame = _frame((html, options.model_dump()))
        self._pending.append(frame)
        if self._ready():
            assert self._feed is not None
            self._feed.put(frame)
            return
        with contextlib.suppress(SandboxError):
            self._running()  # a new child is fed every queued page, this one included

    def result(self, timeout_s: float) -> HtmlResult:
        """The result of the oldest queued page, waiting at most ``timeout_s`` once it is the oldest (its
        time in the child may have begun a little earlier, while the caller was busy); raise
        ``ExtractTimeout`` or ``SandboxError``. Either way the page leaves the queue; a killed child's
        other pages go to the next one. A child that dies on the page (the system ended it, say) is replaced
        and the page tried once more: only a page that kills two children is the page's fault."""
        assert self._pending, "result() without a submitted page"
        reply, proc = self._reply(timeout_s)
        if reply is None:  # the child died on this page: give it one fresh child before blaming the page
            self.close()
            reply, proc = self._reply(timeout_s)
        self._pending.popleft()
        self._pages += 1
        answer: tuple[str, Any] = reply or ("died", None)
        status, payload = answer
        if status == "ok":
            text, title, url = payload
            if self._pages >= _PAGES_PER_CHILD and not self._pending:
                self.close()
            return HtmlResult(text, title, url)
        if status == "error":
            raise SandboxError(str(payload))
        self.close()
        raise SandboxError(f"the extraction process died twice on this page (exit status {proc.returncode})")

    def _reply(self, timeout_s: float) -> tuple[tuple[str, Any] | None, subprocess.Popen[bytes]]:
        """The child's answer for the oldest queued page (None: the child died) and the child; a timeout or a
        child that cannot start drops the page from the queue and raises."""
        try:
            proc = self._running()
            self._await(proc, timeout_s)
        except (ExtractTimeout, SandboxError):
            self._pending.popleft()  # the next call answers for the next page
            raise
        return _read_frame_safe(proc), proc

    def discard(self) -> None:
        """Forget the queued pages (their caller gave up on them): the child working on them is ended."""
        if self._pending:
            self._pending.clear()
            self.close()

    def __del__(self) -> None:
        # A thread's sandbox dies with the thread (thread-local): its child must not outlive it.
        self.close()

    def close(self) -> None:
        """Kill the child (if any); the next page starts a new one, which is sent the pages still queued."""
        proc, self._proc = self._proc, None
        feed, self._feed = self._feed, None
        self._pages = 0
        if feed is not None:
            feed.put(None)
        if proc is None:
            return
        proc.kill()
        proc.wait()
        # A feeding thread closes the child's stdin itself when it stops: closing it here, while that thread may
        # be between two writes, would free the descriptor's number for the next child's pipe, and the rest of
        # an old page would be written into the new child's input.
        for stream in (proc.stdout,) if feed is not None else (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    @property
    def pid(self) -> int | None:
        """The child's process id, when one is running."""
        return self._proc.pid if self._proc is not None else None


def _feed_child(stdin: IO[bytes], feed: queue.SimpleQueue[bytes | None]) -> None:
    """Write queued frames to a child until told to stop or the child is gone, then close its stdin."""
    with contextlib.suppress(OSError, ValueError):  # the child was killed: the next one is fed the pages again
        while (frame := feed.get()) is not None:
            view = memoryview(frame)
            while view:  # an unbuffered write may take part of the frame
                view = view[stdin.write(view) or 0:]
    with contextlib.suppress(OSError):
        stdin.close()


def _read_frame_safe(proc: subprocess.Popen[bytes]) -> Any:
    """The child's next message, or None when the pipe broke or the frame is damaged."""
    assert proc.stdout is not None
    try:
        return _read_frame(proc.stdout)
    except (EOFError, pickle.UnpicklingError, struct.error):
        return None


_local = threading.local()
_all: weakref.WeakSet[Sandbox] = weakref.WeakSet()
_all_lock = threading.Lock()


_spare: list[Sandbox] = []
"""Sandboxes whose child was launched ahead of need (``prestart``), for the first threads that extract."""


def prestart(count: int) -> None:
    """Launch ``count`` extraction processes now without waiting for them: they import trafilatura while
    this process does other work (imports, planning), and the first threads to extract take them."""
    for _ in range(count):
        box = Sandbox()
        box._launch()
        with _all_lock:
            _all.add(box)
            _spare.append(box)


def discard_for_thread() -> None:
    """Forget the pages the calling thread queued, if it has a sandbox (``Sandbox.discard``)."""
    box: Sandbox | None = getattr(_local, "box", None)
    if box is not None:
        box.discard()


def for_thread() -> Sandbox:
    """The calling thread's sandbox: Prefect may run tasks in threads, each needs its own pipe."""
    box: Sandbox | None = getattr(_local, "box", None)
    if box is None:
        with _all_lock:
            box = _spare.pop() if _spare else None
            if box is None:
                box = Sandbox()
                _all.add(box)
        _local.box = box
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
    from flows.extract.html_modes import extract_html, warm_up  # the child alone needs trafilatura

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

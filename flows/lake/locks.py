"""One writer at a time: the OS lock of a local lake, the lease lock of a lake on an object store."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flows.lake.layout import LOCK, as_store
from flows.storage import Store


class LakeBusyError(RuntimeError):
    """Another run holds the lake."""


@contextlib.contextmanager
def lake_lock(lake: Store | str | os.PathLike[str], wait_s: float, lease_s: float = 60.0) -> Iterator[LeaseLock | None]:
    """Hold the lake's lock for a run; wait up to ``wait_s`` seconds for another run to finish.

    A local lake takes an OS lock (released when the process dies). A lake on an object store takes a
    lease (``LeaseLock``); it yields the lease, whose ``check()`` fails once another run took it over.
    """
    store = as_store(lake)
    if store.remote:
        lease = LeaseLock(store, lease_s)
        lease.acquire(wait_s)
        try:
            yield lease
        finally:
            lease.release()
        return
    with _os_lock(store.local(), wait_s):
        yield None


def check_not_busy(lake: Store, wait_s: float) -> None:
    """Raise ``LakeBusyError`` now when another run holds the lake and this one would not wait for it.

    A courtesy before the run starts (no Prefect server, no traceback); the run takes the lock itself.
    """
    if wait_s > 0:
        return
    if lake.remote:
        current = lake.read_with_etag(LOCK)
        if current is not None and _lease_of(current[0]).get("expires", 0) > time.time():
            raise LakeBusyError(LeaseLock(lake, 0).busy_message())
        return
    if lake.local(LOCK).exists():
        with _os_lock(lake.local(), 0):
            pass


@contextlib.contextmanager
def _os_lock(lake: Path, wait_s: float) -> Iterator[None]:
    lake.mkdir(parents=True, exist_ok=True)
    with open(lake / LOCK, "a+") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another run"
                    raise LakeBusyError(
                        f"the lake {lake} is being written by {holder}; wait for it to finish and run again, "
                        "or set lock_wait_s to wait for it"
                    ) from err
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


class LeaseLock:
    """The lock of a lake on an object store: the object ``LAKE/_lock``, created with a conditional write.

    It holds the owner (pid, host), since when, and a lease that a thread renews every third of
    ``lease_s`` with ``If-Match`` on the object's ETag. A run whose holder died is taken over once its
    lease has expired (again with ``If-Match``, so two runs cannot both take it). A holder that fails
    to renew, or finds the lock taken over, stops before it commits (``check``).
    """

    def __init__(self, store: Store, lease_s: float) -> None:
        self.store, self.lease_s = store, lease_s
        self.owner = f"pid {os.getpid()} on {socket.gethostname()}"
        self.since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.etag: str | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner, "since": self.since, "expires": time.time() + self.lease_s,
                           "lease_s": self.lease_s}).encode()

    def acquire(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            self.etag = self.store.create_exclusive(LOCK, self._body())
            if self.etag is None:
                self.etag = self._take_over_expired()
            if self.etag is not None:
                break
            if time.monotonic() >= deadline:
                raise LakeBusyError(self.busy_message())
            time.sleep(min(1.0, max(0.1, deadline - time.monotonic())))
        self._renewer = threading.Thread(target=self._renew, name="siftlake-lease", daemon=True)
        self._renewer.start()

    def _take_over_expired(self) -> str | None:
        current = self.store.read_with_etag(LOCK)
        if current is None:  # released meanwhile: try to create it again
            return self.store.create_exclusive(LOCK, self._body())
        holder = _lease_of(current[0])
        if holder.get("expires", 0) > time.time():
            return None
        return self.store.replace_if(LOCK, self._body(), current[1])

    def busy_message(self) -> str:
        current = self.store.read_with_etag(LOCK)
        holder = _lease_of(current[0]) if current else {}
        expires = holder.get("expires")
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)) if expires else "?"
        return (f"the lake {self.store.uri} is being written by {holder.get('owner', 'another run')} since "
                f"{holder.get('since', '?')} (its lease runs to {until} and is renewed while it works); wait for "
                "it to finish and run again, or set lock_wait_s to wait for it. If that run's machine is gone, "
                f"its lock is taken over once the lease expires (lease_s={holder.get('lease_s', '?')}).")

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                etag = self.store.replace_if(LOCK, self._body(), self.etag or "")
            except Exception as err:  # a store that went away: the lease may lapse; check() says so
                self.lost = f"could not renew the lake's lock ({type(err).__name__}: {err})"
                continue
            if etag is None:
                self.lost = "another run took over the lake's lock (this run's lease had expired)"
                return
            self.etag, self.lost = etag, None

    def check(self) -> None:
        """Raise ``LakeBusyError`` when this run no longer holds the lake (before committing)."""
        if self.lost:
            raise LakeBusyError(f"{self.store.uri}: {self.lost}; this run stops before its commit. Run it again "
                                "to resume its staged shards.")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(10)
        if self.etag and not self.lost:
            with contextlib.suppress(Exception):
                self.store.delete_if(LOCK, self.etag)


def _lease_of(data: bytes) -> dict[str, Any]:
    try:
        return dict(json.loads(data))
    except (ValueError, TypeError):
        return {}


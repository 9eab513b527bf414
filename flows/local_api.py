"""A Prefect API on this machine that outlives one run, for runs with no Prefect server configured.

Without ``PREFECT_API_URL``, Prefect starts a temporary server for each run and waits for it: ~5 s of
imports and start-up on a warm 2-core machine, 10-24 s on a busy or new one, every run. siftlake starts
the same server once, in the background, while the command is still importing, and later runs reuse it.
It stops by itself after ``SIFTLAKE_API_IDLE_S`` seconds without a request (default 600; ``0`` turns this
off, and each run starts Prefect's temporary server as before). ``siftlake server stop`` stops it now.

It is the server Prefect would start (``create_app`` in ephemeral mode: the REST API without the UI or
background services) over the same database in ``PREFECT_HOME``: flow runs, task runs and artifacts are
kept as with the temporary server. This module is part of the Prefect shell, not of the pure core; the
command imports it before Prefect, so it imports Prefect only in the server's own process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

IDLE_ENV = "SIFTLAKE_API_IDLE_S"
DEFAULT_IDLE_S = 600.0
# How long a run waits for a server it started (the first start on a new machine compiles and migrates).
STARTUP_TIMEOUT_S = 120.0
# How long a started server waits for its first request before the idle clock runs.
_FIRST_REQUEST_GRACE_S = 30.0
# The environment Prefect's own temporary server runs with (prefect.server.api.server.SubprocessASGIServer).
_SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}


@dataclass(frozen=True)
class LocalApi:
    """A background server: its URL, its process, and whether this command started it."""

    url: str
    pid: int
    started_here: bool
    state_file: Path

    def ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> bool:
        """Wait until the server answers; False when it died or did not answer in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if _healthy(self.url, timeout_s=1.0):
                return True
            if not _alive(self.pid):
                return False
            time.sleep(0.05)
        return False


def idle_seconds() -> float:
    """The idle time after which the server stops; 0 when background servers are off."""
    raw = os.environ.get(IDLE_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_IDLE_S
    except ValueError as err:
        raise ValueError(f"{IDLE_ENV}={raw!r} is not a number of seconds (0 turns the background server off)") from err


def configured_api_url() -> str | None:
    """The Prefect API this machine is configured to use (environment or active profile), if any."""
    if url := os.environ.get("PREFECT_API_URL"):
        return url
    profiles = prefect_home() / "profiles.toml"
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
        data = tomllib.loads(profiles.read_text())
        active = os.environ.get("PREFECT_PROFILE") or data.get("active", "ephemeral")
        url = data.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
        return str(url) if url else None
    return None


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()


def start_or_reuse() -> LocalApi | None:
    """The background server for this machine's Prefect settings: the running one, or one started now
    (without waiting for it). None when a Prefect API is configured or background servers are off."""
    if configured_api_url() or idle_seconds() == 0:
        return None
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    state_file = home / f"siftlake-api-{_settings_key()}.json"
    with _locked(home / "siftlake-api.lock"):
        running = _running(state_file)
        if running is not None:
            return running
        stale = _read_state(state_file)
        if stale is not None:
            stop_one(stale)  # gone, or alive but not answering long after its start
        return _spawn(state_file, idle_seconds())


@contextlib.contextmanager
def serving(api: LocalApi | None) -> Iterator[None]:
    """Point the flow runs in this block at ``api`` once it answers (Prefect read its settings at import,
    so the environment alone is too late; worker processes get it from the environment). If it does not
    answer, Prefect starts its temporary server as it would without siftlake."""
    if api is None:
        yield
        return
    if not api.ready():
        print(f"siftlake: the background Prefect API did not start (see {api.state_file.with_suffix('.log')}); "
              "using a temporary server for this run", file=sys.stderr)
        yield
        return
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_UI_URL, temporary_settings

    os.environ["PREFECT_API_URL"] = api.url
    # Flow heartbeats feed the crashed-run automation, a background service this server does not run;
    # ending a flow waits up to a second for the heartbeat thread. It serves no UI: no "View at" links.
    with temporary_settings(updates={PREFECT_API_URL: api.url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
                                     PREFECT_UI_URL: ""}):
        yield


def stop(home: Path | None = None) -> list[int]:
    """Stop every background server started for ``home`` (default: PREFECT_HOME); return their pids."""
    stopped = []
    for state_file in sorted((home or prefect_home()).glob("siftlake-api-*.json")):
        api = _read_state(state_file)
        if api is not None and stop_one(api):
            stopped.append(api.pid)
    return stopped


def stop_one(api: LocalApi) -> bool:
    """Stop ``api``'s server (SIGTERM: it finishes the requests in flight); False if it had stopped."""
    api.state_file.unlink(missing_ok=True)
    if not _alive(api.pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(api.pid, signal.SIGTERM)
    return True


def running(home: Path | None = None) -> list[LocalApi]:
    """The background servers of ``home`` (default: PREFECT_HOME) that answer."""
    found = []
    for state_file in sorted((home or prefect_home()).glob("siftlake-api-*.json")):
        api = _running(state_file)
        if api is not None:
            found.append(api)
    return found


def _settings_key() -> str:
    """Servers are shared only between runs that would have started the same one: same interpreter,
    Prefect release, PREFECT_* settings and working folder (Prefect also reads ./pyproject.toml)."""
    prefect_env = sorted((k, v) for k, v in os.environ.items() if k.startswith("PREFECT_"))
    parts = [sys.executable, version("prefect"), str(Path.cwd()), json.dumps(prefect_env)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Two commands starting at once start one server between them."""
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _running(state_file: Path) -> LocalApi | None:
    api = _read_state(state_file)
    if api is None or not _alive(api.pid):
        return None
    if _healthy(api.url, timeout_s=2.0):
        return api
    # Alive but silent: still starting (another command launched it a moment ago), or stuck.
    try:
        started = state_file.stat().st_mtime
    except OSError:  # stopped meanwhile
        return None
    return api if time.time() - started < STARTUP_TIMEOUT_S else None


def _read_state(state_file: Path) -> LocalApi | None:
    try:
        state = json.loads(state_file.read_text())
        return LocalApi(url=state["url"], pid=int(state["pid"]), started_here=False, state_file=state_file)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _spawn(state_file: Path, idle_s: float) -> LocalApi:
    port = _free_port()
    log = open(state_file.with_suffix(".log"), "ab")  # noqa: SIM115 - handed to the server process
    with log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.local_api", str(port), str(idle_s), str(state_file)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, **_SERVER_ENV},
        )
    url = f"http://127.0.0.1:{port}/api"
    state_file.write_text(json.dumps({"url": url, "pid": process.pid}))
    return LocalApi(url=url, pid=process.pid, started_here=True, state_file=state_file)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running siftlake API server (a pid is reused once its process is gone, and a
    server must never be taken for another process, which ``stop`` would then kill)."""
    try:
        # Our own child: running, or exited (reap it). Its command line may not name the server yet: just after
        # the spawn /proc shows the forking process's, or nothing, until the exec.
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except (ChildProcessError, OSError):  # not our child: judge by its command line
        pass
    try:
        if Path("/proc/self").is_dir():
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        else:  # no /proc (macOS): ask ps
            command = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True,
                                     check=False, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"flows.local_api" in command


def _healthy(url: str, timeout_s: float) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as response:
            return bool(response.status == 200)
    except OSError:
        return False


# --- the server's own process -------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _IdleClock:
    """An ASGI wrapper that knows how long the API has had no request or open connection."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app
        self.open = 0
        self.answered = 0
        self.last = time.monotonic()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        self.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1
            self.answered += 1
            self.last = time.monotonic()

    def idle_for(self) -> float:
        return 0.0 if self.open else time.monotonic() - self.last


def serve(port: int, idle_s: float, state_file: Path) -> None:
    """Run the API on 127.0.0.1:``port`` until it has been idle for ``idle_s`` seconds or is sent SIGTERM."""
    import uvicorn
    from prefect.server.api.server import create_app

    clock = _IdleClock(create_app(ephemeral=True, final=True))
    server = uvicorn.Server(uvicorn.Config(clock, host="127.0.0.1", port=port, log_level="error", lifespan="on"))

    def stop_when_idle() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.1)
        # The idle time counts from the first answer: on a busy machine the process that started the server may
        # poll it later than ``idle_s`` after it is up (seen with idle_s=2 under load). A server nobody asks
        # anything stops after the grace period.
        started = time.monotonic()
        while not clock.answered and time.monotonic() - started < max(idle_s, _FIRST_REQUEST_GRACE_S):
            time.sleep(0.1)
        clock.last = max(clock.last, started)
        while not server.should_exit:
            time.sleep(min(5.0, idle_s / 4))
            if clock.idle_for() >= idle_s:
                server.should_exit = True

    threading.Thread(target=stop_when_idle, daemon=True).start()
    try:
        server.run()
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(state_file.read_text()).get("pid") == os.getpid():
                state_file.unlink()


if __name__ == "__main__":
    serve(int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3]))

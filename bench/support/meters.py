"""What the benchmarks measure with: CPU seconds, peak RSS of a process or of a command's process tree,
and a local S3 server (moto) to read and write through."""

from __future__ import annotations

import contextlib
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.support.paths import REPO

if TYPE_CHECKING:  # psutil is imported where a command's tree is measured, not by every bench
    import psutil


def cpu_seconds(fn: Callable[[], object], tries: int = 3) -> float:
    """Best of ``tries`` CPU times: the machine is shared, the minimum is the least disturbed."""
    best = float("inf")
    for _ in range(tries):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec,
    so a child would report its parent's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Result:
    """What ``run_measured`` measured of one command."""

    seconds: float
    peak_rss: int
    output: str
    detail: dict[str, object] = field(default_factory=dict)
    peak_pss: int = 0
    """Peak proportional set size of the tree: pages shared between its processes counted once."""
    cpu_seconds: float = 0.0
    """User + system CPU of the whole process tree (and of any helper server the run used)."""

    def cores_busy(self) -> float:
        """Average cores busy over the wall time: idle cores show up on any machine."""
        return self.cpu_seconds / self.seconds if self.seconds else 0.0


class _TreeWatch:
    """Polls a process tree every 0.1 s in a thread: its peak RSS, peak PSS and each process's CPU seconds."""

    def __init__(self, proc: psutil.Process) -> None:
        self.proc = proc
        self.seen: dict[int, psutil.Process] = {}
        self.cpu_seen: dict[int, float] = {}
        self.peak = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        """Sample until stopped: RSS every 0.1 s, PSS every 0.5 s."""
        rounds = 0
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            if rounds % 5 == 0:  # reading smaps costs more: every 0.5 s
                self.peak_pss = max(self.peak_pss, _tree_pss(self.proc))
            rounds += 1
            self._stop.wait(0.1)

    def stop(self) -> None:
        """Stop polling (the figures are final once this returns)."""
        self._stop.set()
        self._thread.join()

    def kill_leftovers(self) -> None:
        """End the processes of the tree still alive (they are this run's own)."""
        import psutil

        for leftover in self.seen.values():
            with contextlib.suppress(psutil.Error):
                leftover.kill()

    def _sample(self) -> int:
        """One sample of the tree: returns its RSS now, notes each process in ``seen`` and its CPU seconds
        so far in ``cpu_seen``."""
        import psutil

        total = 0
        try:
            tree = [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return 0
        for p in tree:
            self.seen.setdefault(p.pid, p)
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
                times = p.cpu_times()
                self.cpu_seen[p.pid] = times.user + times.system
        return total


def run_measured(cmd: list[str], out_dir: Path, env: dict[str, str] | None = None) -> Result:
    """Run ``cmd`` in the repository; return its wall time, the peak RSS of its process tree and its stdout.

    Output goes to files in ``out_dir``, not pipes, so a straggling grandchild cannot hold the run open;
    processes of the tree still alive when the command exits are ended (they are this run's own).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = out_dir / "last.stdout", out_dir / "last.stderr"
    import psutil

    cpu_before = _children_cpu()
    start = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = psutil.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        watch = _TreeWatch(proc)
        code = proc.wait()
        seconds = time.perf_counter() - start
        watch.stop()
    # Processes that were never waited for (a pool terminated at exit) are missing from the first figure;
    # the second, polled every 0.1 s, misses each process's last moments: the larger is the closer.
    cpu = max(_children_cpu() - cpu_before, sum(watch.cpu_seen.values()))
    watch.kill_leftovers()
    if code != 0:
        raise SystemExit(f"{cmd[:3]} failed ({code}):\n{err_path.read_text(errors='replace')[-3000:]}")
    return Result(seconds, watch.peak, out_path.read_text(), peak_pss=watch.peak_pss, cpu_seconds=cpu)


def _children_cpu() -> float:
    """CPU seconds of every waited-for descendant so far: each process of a contestant's tree waits for
    its own children, so their time adds up into the contestant's when it exits."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _tree_pss(proc: psutil.Process) -> int:
    """The tree's proportional set size now."""
    import psutil

    total = 0
    with contextlib.suppress(psutil.Error):
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_full_info().pss
    return total


@contextlib.contextmanager
def moto_server() -> Iterator[dict[str, str]]:
    """moto's S3 server on a free port of 127.0.0.1; yields the environment that points clients at it."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(150):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{env['AWS_ENDPOINT_URL']}/moto-api/", timeout=1).close()
                break
            time.sleep(0.2)
        yield env
    finally:
        server.terminate()
        server.wait(10)

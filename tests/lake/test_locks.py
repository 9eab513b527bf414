"""One writer at a time: a second writer waits or fails with a message that says what to do."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from flows import lake as lakefs


def _hold_lock(lake: str, ready: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event) -> None:
    with lakefs.lake_lock(Path(lake), 0):
        ready.set()
        release.wait(30)


def test_a_second_writer_fails_with_a_message_that_says_what_to_do(tmp_path: Path) -> None:
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(lakefs.LakeBusyError, match="wait for it to finish"), lakefs.lake_lock(tmp_path, 0.2):
            pass
    finally:
        release.set()
        holder.join(30)
    with lakefs.lake_lock(tmp_path, 0):
        pass

"""A takedown killed (``SIFTLAKE_FAULT``, an ``os._exit`` as kill -9 would) at each of its steps: the lake reads
as before it or, once its COMMIT is written, as after it, and the next command (a forget or an ingest) leaves
it exactly as before or exactly as after. The pattern of tests/test_crash.py, for ``siftlake forget``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flows.forget import FAULT_POINTS
from tests.forget import corpus
from tests.forget.conftest import GROUP

pytestmark = [pytest.mark.usefixtures("prefect_server"), GROUP]

REPO = Path(__file__).resolve().parents[2]
FAULTS = [*FAULT_POINTS, "commit:before_marker", "commit:after_first_move"]
TARGETS = ["https://site-a.example/p/0", "https://mirror.example.net/6", "https://site-c.example/n/1"]


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory, forget_lake: Path) -> tuple[Path, dict[str, Any]]:
    """The lake before, and what it reads as after a takedown that was not interrupted."""
    root = tmp_path_factory.mktemp("forget-crash")
    done = corpus.copy_lake(forget_lake, root / "done")
    assert _forget(done, _list(root), fault=None).returncode == 0
    return forget_lake, corpus.snapshot(done)


def _list(folder: Path) -> Path:
    listing = folder / "takedown.txt"
    listing.write_text("\n".join(TARGETS) + "\n")
    return listing


def _forget(lake: Path, listing: Path, fault: str | None, kind: str = "--urls") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SIFTLAKE_FAULT"}
    if fault:
        env["SIFTLAKE_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "flows.cli", "forget", "--lake", str(lake), kind, str(listing),
                           "--reason", "crash test", "--with-copies"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_killed_forget_leaves_the_lake_as_before_or_after(fault: str, states: tuple[Path, dict[str, Any]],
                                                            tmp_path: Path) -> None:
    built, after = states
    lake = corpus.copy_lake(built, tmp_path / "lake")
    before = corpus.snapshot(lake)
    killed = _forget(lake, _list(tmp_path), fault)
    assert killed.returncode == 137, killed.stderr[-3000:]
    committed = fault == "commit:after_first_move"
    staged = list((lake / "_staging").iterdir())
    assert len(staged) == 1 and staged[0].name.startswith("forget-")
    assert (staged[0] / "COMMIT").exists() == committed
    if not committed:
        assert corpus.snapshot(lake) == before, "nothing of a takedown is visible before its COMMIT"
    # The next command: the same takedown again (it finds nothing left when the first was rolled forward).
    again = _forget(lake, _list(tmp_path), None)
    assert again.returncode == 0, again.stderr[-3000:]
    assert corpus.snapshot(lake) == after
    assert not any((lake / "_staging").iterdir())
    corpus.clusters_are_whole(lake)


@pytest.mark.parametrize("fault", ["forget:staged", "commit:after_first_move"])
def test_the_next_ingest_discards_or_finishes_a_killed_forget(fault: str, states: tuple[Path, dict[str, Any]],
                                                              tmp_path: Path) -> None:
    built, after = states
    lake = corpus.copy_lake(built, tmp_path / "lake")
    before = corpus.snapshot(lake)
    assert _forget(lake, _list(tmp_path), fault).returncode == 137
    counts = corpus.ingest(corpus.write_jsonl(tmp_path / "next" / "n.jsonl", [corpus.page(
        "n", "https://site-c.example/n/1", corpus.text(1001))]), lake)
    state = corpus.snapshot(lake)
    if fault == "commit:after_first_move":  # rolled forward: the new page's URL is blocked
        assert counts["documents"] == 0 and counts["reject_reasons"] == {"read/taken_down": 1}
        assert state == after
    else:  # discarded: the lake as before, plus the new run's page (the same text as the one there: a copy)
        assert counts["documents"] == 1 and counts["duplicates"] == 1
        assert [d for d in state["documents"] if d[0] in {x[0] for x in before["documents"]}] == before["documents"]
        assert state["blocked"] == before["blocked"]
    assert not any((lake / "_staging").iterdir())

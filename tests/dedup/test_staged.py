"""Staged arrays, read back by the partition tasks: any rows, from the local file or the store's copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.dedup import staged
from flows.lake.layout import RunPaths
from flows.storage import Store

_ROWS = 300


def _paths(root: Path) -> RunPaths:
    return RunPaths(Store(str(root)), "run-1", "2026-12-04")


@pytest.fixture(scope="module")
def array_on_disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunPaths, np.ndarray]:
    paths = _paths(tmp_path_factory.mktemp("lake"))
    array = np.zeros(_ROWS, staged.BAND_DTYPE)
    array["key"], array["node"] = np.arange(_ROWS) * 7, np.arange(_ROWS)
    staged.save_array(paths, "dedup/test.bands.npy", array)
    return paths, array


@settings(max_examples=60, deadline=None)
@given(wanted=st.sets(st.integers(0, _ROWS - 1), max_size=_ROWS).map(sorted), start=st.integers(0, _ROWS),
       length=st.integers(0, _ROWS))
def test_any_rows_read_back_as_numpy_indexes_them(array_on_disk: tuple[RunPaths, np.ndarray], wanted: list[int],
                                                  start: int, length: int) -> None:
    # Scattered or dense, the rows come back as they were saved, whether read run by run or in one piece.
    paths, array = array_on_disk
    picked = staged.picked_file_rows(paths, "dedup/test.bands.npy", np.asarray(wanted, dtype=np.int64))
    assert picked.dtype == array.dtype and picked.tolist() == array[wanted].tolist()
    stop = min(start + length, _ROWS)
    assert staged.file_rows(paths, "dedup/test.bands.npy", start, stop).tolist() == array[start:stop].tolist()


def test_a_file_written_again_is_read_again_and_rows_past_its_end_are_an_error(tmp_path: Path) -> None:
    # The layout of a staged file is remembered by path, modification time and size: a retried task's new file
    # (here: other rows, another shape) is never read with the old layout.
    paths = _paths(tmp_path)
    staged.save_array(paths, "dedup/x.npy", np.arange(10, dtype=np.uint64))
    assert staged.file_rows(paths, "dedup/x.npy", 2, 4).tolist() == [2, 3]
    staged.save_array(paths, "dedup/x.npy", np.arange(100, 130, dtype=np.uint32).reshape(15, 2))
    assert staged.file_rows(paths, "dedup/x.npy", 2, 4).tolist() == [[104, 105], [106, 107]]
    with pytest.raises(IndexError, match="15 rows"):
        staged.picked_file_rows(paths, "dedup/x.npy", np.array([3, 15]))
    with pytest.raises(FileNotFoundError):
        staged.file_rows(paths, "dedup/missing.npy", 0, 1)

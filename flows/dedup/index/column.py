"""One array of a format-3 segment (``<name>.npy``) read on demand: rows with ``pread``, sorted keys searched
through a mapping made for the search and closed after it.

Nothing stays open between reads. Python's ``mmap`` keeps a duplicate of its file descriptor for as long as
the mapping lives, so mapping the 12 arrays of each of P x (segments per partition) segments for the whole
run would hold thousands of descriptors (past the usual limit of 1,024) and keep their touched pages in
the resident set; a search maps one array, releases its pages every 256K needles and unmaps it.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from flows.dedup.index.files import npy_header

_T = TypeVar("_T")
# Rows read with a pread each at most (~1 us of syscall, ~1 us of Python): more go through a mapping.
_READS_AT_MOST = 256
# Probes made between releases of a mapping's pages: a probe faults in 64 KB around it ("fault-around"), so
# ~200 merge bounds x ~28 probes each held 340 MB of a 1.5 GB key file (measured) when not released.
_PROBES_AT_ONCE = 16
# Sorted needles searched at once, within a window of at most ~_WINDOW_ROWS rows (32 MB of keys) of the
# column, whose pages are released after each piece.
_NEEDLES_AT_ONCE = 1 << 16
_WINDOW_ROWS = 1 << 22


def key_ranges(haystack: np.ndarray, needles: np.ndarray, release: Callable[[], None]) -> tuple[np.ndarray, np.ndarray]:
    """First position and length of the run of each needle in the sorted ``haystack`` (length 0: absent).

    ``needles`` must be sorted: numpy's binary search then starts from the previous answer, ~25x faster than
    random needles against a 32M-key haystack (0.17 vs 4.2 s for 6.4M needles, measured). They are searched
    a piece at a time, each piece within the window of the haystack it spans (at most ~_WINDOW_ROWS rows),
    the mapping's pages released after each: a search over the whole haystack probes pages all over it (its
    upper bound stays the end), which held a whole 512 MB key file in the resident set (measured).
    """
    lo = np.zeros(len(needles), dtype=np.int64)
    count = np.zeros(len(needles), dtype=np.int64)
    if len(haystack) == 0 or len(needles) == 0:
        return lo, count
    edges = np.array(haystack[_WINDOW_ROWS::_WINDOW_ROWS])  # a key every _WINDOW_ROWS rows: one page each
    cuts = np.unique(np.r_[np.searchsorted(needles, edges), np.arange(0, len(needles), _NEEDLES_AT_ONCE),
                           len(needles)])
    for start, stop in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
        piece = needles[start:stop]
        low = int(np.searchsorted(haystack, piece[0], side="left"))
        window = haystack[low : int(np.searchsorted(haystack, piece[-1], side="right"))]
        first = np.searchsorted(window, piece, side="left")
        inside = np.flatnonzero(first < len(window))
        hit = inside[np.asarray(window[first[inside]]) == piece[inside]]
        lo[start:stop] = first + low
        if len(hit):
            count[start + hit] = np.searchsorted(window, piece[hit], side="right") - first[hit]
        del window
        release()
    return lo, count


def _gathered(array: np.ndarray, rows: np.ndarray, release: Callable[[], None]) -> np.ndarray:
    """``array[rows]`` (rows sorted), a piece at a time, the mapping's pages released after each piece."""
    out = np.empty((len(rows), *array.shape[1:]), dtype=array.dtype)
    for i in range(0, len(rows), _PROBES_AT_ONCE * 16):
        out[i : i + _PROBES_AT_ONCE * 16] = array[rows[i : i + _PROBES_AT_ONCE * 16]]
        release()
    return out


@dataclass(frozen=True)
class Column:
    """A ``.npy`` file's layout (dtype, shape, data offset), read from its header once."""

    path: Path
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    offset: int

    @classmethod
    def open(cls, path: Path) -> Column:
        with open(path, "rb") as f:
            shape, fortran, dtype, offset = npy_header(f)
        if fortran:
            raise ValueError(f"{path.name} is in Fortran order")
        return cls(path, dtype, tuple(shape), offset)

    @classmethod
    def empty(cls, path: Path, dtype: Any, tail: tuple[int, ...] = ()) -> Column:
        """A column with no rows (its file is not read)."""
        return cls(path, np.dtype(dtype), (0, *tail), 0)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def row_bytes(self) -> int:
        return self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))

    def range(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo..hi`` (a writable copy), in one read."""
        lo, hi = max(lo, 0), min(hi, len(self))
        out = np.empty((max(hi - lo, 0), *self.shape[1:]), dtype=self.dtype)
        if hi <= lo:
            return out
        view, done = out.reshape(-1).view(np.uint8).data, 0
        with open(self.path, "rb", buffering=0) as f:
            f.seek(self.offset + lo * self.row_bytes)
            while done < len(view):  # a read may return less than asked (past 2 GB, say)
                got = f.readinto(view[done:])
                if not got:
                    raise ValueError(f"{self.path.name} is shorter than its header says")
                done += got
        return out

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The given rows, in their order: a read per run of consecutive rows when few, else gathered through a
        mapping (pages released every 1,024 rows): 520K refs cost 0.57 s of preads, mostly Python's."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        uniq, inverse = np.unique(rows, return_inverse=True)
        if len(uniq) > _READS_AT_MOST:
            return self.with_mapping(lambda array, release: _gathered(array, uniq, release))[inverse.reshape(-1)]
        breaks = np.flatnonzero(np.diff(uniq) != 1) + 1
        starts, stops = np.r_[uniq[:1], uniq[breaks]], np.r_[uniq[breaks - 1], uniq[-1:]] + 1
        width = self.row_bytes
        with open(self.path, "rb", buffering=0) as f:
            fd = f.fileno()
            raw = b"".join(os.pread(fd, int(b - a) * width, self.offset + int(a) * width)
                           for a, b in zip(starts.tolist(), stops.tolist(), strict=True))
        return np.frombuffer(raw, dtype=self.dtype).reshape(-1, *self.shape[1:])[inverse.reshape(-1)]

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return self.range(start, stop)
            return self.with_mapping(lambda array, _: np.array(array[index]))
        if isinstance(index, int | np.integer):
            return self.take(np.array([int(index)]))[0]
        return self.take(np.asarray(index))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.range(0, len(self)))

    def with_mapping(self, use: Callable[[np.ndarray, Callable[[], None]], _T]) -> _T:
        """``use(array, release)`` on the whole column mapped read-only; the mapping (and its descriptor) is
        closed after, so ``use`` must return copies, not views. ``release`` drops its pages from the RSS."""
        if len(self) == 0:
            return use(np.empty(self.shape, dtype=self.dtype), lambda: None)
        with open(self.path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        array = np.frombuffer(mapped, dtype=self.dtype, count=int(np.prod(self.shape)), offset=self.offset)
        try:
            return use(array.reshape(self.shape), lambda: mapped.madvise(mmap.MADV_DONTNEED))
        finally:
            del array
            try:
                mapped.close()
            except BufferError:  # a view outlived the call: the mapping goes with it
                mapped.madvise(mmap.MADV_DONTNEED)

    def search(self, needles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``key_ranges`` of (sorted) ``needles`` in this sorted column."""
        return self.with_mapping(lambda array, release: key_ranges(array, needles, release))

    def positions(self, values: np.ndarray) -> np.ndarray:
        """Where each of ``values`` would go in this sorted column (``searchsorted``, side left)."""

        def use(array: np.ndarray, release: Callable[[], None]) -> np.ndarray:
            out = [np.empty(0, dtype=np.int64)]
            for i in range(0, len(values), _PROBES_AT_ONCE):
                out.append(np.searchsorted(array, values[i : i + _PROBES_AT_ONCE], side="left"))
                release()
            return np.concatenate(out)

        return self.with_mapping(use)

    def sample(self, step: int) -> np.ndarray:
        """Every ``step``-th row, from row ``step - 1``."""

        def use(array: np.ndarray, release: Callable[[], None]) -> np.ndarray:
            out = [np.empty((0, *self.shape[1:]), dtype=self.dtype)]
            for i in range(step - 1, len(array), step * _PROBES_AT_ONCE):
                out.append(np.array(array[i : i + step * _PROBES_AT_ONCE : step]))
                release()
            return np.concatenate(out)

        return self.with_mapping(use)

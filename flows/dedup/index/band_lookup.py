"""What a segment keeps beside its sorted band keys so a run's search reads few of their pages: a Bloom filter of
the keys (``band_filter.npy``) and a fence, every ``FENCE_STEP``-th key (``band_fence.npy``).

Almost every band key a run searches is in no segment of the lake. Searched directly, the run's sorted keys of one
partition fall a few per page of a segment's keys, and each binary search reads pages all over it: at 100,000
run documents against 10,000,000 indexed ones (64 partitions) the search read nearly every page of the index's
keys (~8 bytes a band row), and the run's dedup time grew with the lake. Now:

* the filter rules out ~98% of absent keys without reading the keys. It is "register-blocked": each key sets
  ``_HASHES`` bits of one 64-bit word, so a probe reads one word; ``BITS_PER_ROW`` bits a band row (1.25 bytes);
* a key that passes is looked for in one block of ``FENCE_STEP`` keys (one page), found from the fence, held in
  memory (8 bytes per ``FENCE_STEP`` rows), instead of by a binary search over the whole segment.

Both together take ~1.3 bytes a band row (~80 bytes a document at 64 bands: ~5% of the index). The answers do not
change: the filter never rules out a key that is there (tests/dedup/index/test_band_lookup.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flows.dedup.index.column import Column

META_KEY = "band_lookup"
"""The entry of ``meta.json`` that says a segment has its filter and fence (segments written before have neither)."""
FILTER_FILE = "band_filter"
FENCE_FILE = "band_fence"
BITS_PER_ROW = 10
_HASHES = 5
FENCE_STEP = 512
"""Keys per fence block: 4 KB of keys, one page."""
META: dict[str, Any] = {"bits_per_row": BITS_PER_ROW, "hashes": _HASHES, "hash": "splitmix64",
                        "fence_step": FENCE_STEP}
_READ_WHOLE = 16
"""Read the whole filter when the needles are at least one in this many of its words, else only their words."""
_NEEDLES_AT_ONCE = 1 << 16
"""Needles searched between releases of the keys' mapped pages."""


def filter_words(rows: int) -> int:
    """The filter's length in 64-bit words for ``rows`` band rows."""
    return max(1, -(-rows * BITS_PER_ROW // 64))


def fence_length(rows: int) -> int:
    return -(-rows // FENCE_STEP)


@dataclass(frozen=True)
class Probe:
    """Sorted needles with their mixed hashes and filter bits, computed once for every segment searched."""

    needles: np.ndarray
    mixed: np.ndarray
    mask: np.ndarray

    @classmethod
    def of(cls, needles: np.ndarray) -> Probe:
        mixed = _mixed(needles)
        return cls(needles, mixed, _mask(mixed))


def _mixed(keys: np.ndarray) -> np.ndarray:
    """Band keys' low bits follow their partition (``key % P``), so they are mixed first (splitmix64's finalizer)."""
    z = np.asarray(keys, dtype=np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    out: np.ndarray = z ^ (z >> np.uint64(31))
    return out


def _mask(mixed: np.ndarray) -> np.ndarray:
    """The ``_HASHES`` bits each key sets in its word."""
    mask = np.zeros(len(mixed), dtype=np.uint64)
    for i in range(_HASHES):
        mask |= np.uint64(1) << ((mixed >> np.uint64(6 * i)) & np.uint64(63))
    return mask


def _word(mixed: np.ndarray, words: int) -> np.ndarray:
    """Each key's word in a filter of ``words`` words (words < 2**32: the product does not overflow)."""
    return (((mixed >> np.uint64(32)) * np.uint64(words)) >> np.uint64(32)).astype(np.int64)


def build_filter(keys: np.ndarray, words: int | None = None) -> np.ndarray:
    """A filter holding ``keys`` (``words`` long: ``filter_words(len(keys))`` by default)."""
    out = np.zeros(filter_words(len(keys)) if words is None else words, dtype=np.uint64)
    add(out, keys)
    return out


def add(band_filter: np.ndarray, keys: np.ndarray) -> None:
    """Add ``keys`` to ``band_filter`` in place (a merge adds its output a chunk at a time)."""
    mixed = _mixed(keys)
    np.bitwise_or.at(band_filter, _word(mixed, len(band_filter)), _mask(mixed))


def fence_of(keys: np.ndarray, first: int = 0) -> np.ndarray:
    """The fence keys among ``keys``, sorted keys that start at row ``first`` of the segment (a merge writes its
    keys a chunk at a time)."""
    return np.array(keys[(-first) % FENCE_STEP :: FENCE_STEP], dtype=np.uint64)


def may_hold(band_filter: Column, probe: Probe) -> np.ndarray:
    """Which of the probe's needles may be among the filter's keys (no false "no")."""
    if len(probe.needles) == 0:
        return np.zeros(0, dtype=bool)
    word = _word(probe.mixed, len(band_filter))
    if len(word) * _READ_WHOLE >= len(band_filter):
        held: np.ndarray = band_filter.range(0, len(band_filter))[word]
    else:
        held = band_filter.take(word)
    found: np.ndarray = (held & probe.mask) == probe.mask
    return found


def fenced_ranges(keys: Column, fence: np.ndarray, needles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First position and count of each (sorted) needle's run in the sorted ``keys`` (count 0: absent), reading
    only the block of keys the fence names for each needle (and the next, for a run that crosses a fence key)."""
    lo = np.zeros(len(needles), dtype=np.int64)
    count = np.zeros(len(needles), dtype=np.int64)
    if len(keys) == 0 or len(needles) == 0:
        return lo, count

    def search(array: np.ndarray, release: Any) -> None:
        for start in range(0, len(needles), _NEEDLES_AT_ONCE):
            piece = needles[start : start + _NEEDLES_AT_ONCE]
            first = _bound(array, fence, piece, "left")
            inside = first < len(array)
            hit = np.flatnonzero(inside)[np.asarray(array[first[inside]]) == piece[inside]]
            lo[start : start + len(piece)] = first
            if len(hit):
                count[start + hit] = _bound(array, fence, piece[hit], "right") - first[hit]
            release()

    keys.with_mapping(search)
    return lo, count


def _bound(array: np.ndarray, fence: np.ndarray, needles: np.ndarray, side: str) -> np.ndarray:
    """``np.searchsorted(array, needles, side)``, reading only the block of ``array`` the fence points each to:
    with ``b`` fence keys before the needle (in ``side``'s sense), its bound lies in ``((b - 1) * STEP, b * STEP]``,
    found by a binary search of all needles at once (about 9 keys read each, from one or two pages)."""
    fenced = np.searchsorted(fence, needles, side=side)  # type: ignore[call-overload]
    base = np.maximum(fenced - 1, 0) * FENCE_STEP
    low = np.where(fenced == 0, 0, base + 1)
    high = np.where(fenced == 0, 0, np.minimum(base + FENCE_STEP, len(array)))
    while True:
        active = np.flatnonzero(low < high)
        if len(active) == 0:
            out: np.ndarray = low
            return out
        mid = (low[active] + high[active]) // 2
        values = np.asarray(array[mid])
        right = values < needles[active] if side == "left" else values <= needles[active]
        low[active] = np.where(right, mid + 1, low[active])
        high[active] = np.where(right, high[active], mid)

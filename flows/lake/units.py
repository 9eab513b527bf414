"""The known-units store: which unit ids the lake holds, looked up by key, never scanned nor shipped whole.

A run skips the units the lake already holds (in ``documents`` or ``rejects``). Their ids are kept as 64-bit keys
(xxh3_64 of the id), sorted, in files partitioned by ``key % partitions``::

    LAKE/_units/units.json                         the manifest: partitions, block, tiers and the live files
    LAKE/_units/p<NN>/<name>.u64                   one file: sorted unique keys (little-endian uint64), then its
                                                   fence (every ``block``-th key: where each block begins)
    LAKE/_units/p<NN>/<name>.minus-<forget_id>.u64 keys of that file a takedown removed (sorted)

The manifest alone says which files are live; it is replaced whole (one rename, or one PUT on a bucket) by a
run's commit (the run's files and the new manifest are moves of its COMMIT, like its tables: a unit is known
exactly when its row is in the lake), by a takedown's commit, by a merge and by the first build of an older
lake (``flows.lake.units_update``). A file it does not name is a leftover, which the next merge deletes.

A unit is known when a live file of its partition holds its key and that file's minus list does not: a takedown
removes its documents' keys (``siftlake forget``; a re-read is then a ``taken_down`` reject, as the block list
says), and the reject's key, added later in a new file, is not in that file's minus list.

Lookups read only what they need: on a local lake each file is memory-mapped and searched (only the pages
touched are read); on a bucket the fences and minus lists are read once per process and run (a 1/``block``
share of the store), then each batch of ids costs one ranged read per block it needs (a block of each file of
the id's partition), all in one ``cat_ranges`` call.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import xxhash

from flows.lake.layout import UNITS
from flows.storage import Store

MANIFEST = f"{UNITS}/units.json"
FORMAT = 1
KEY = np.dtype("<u8")
_EMPTY = np.empty(0, KEY)


def unit_key(unit_id: str) -> int:
    """64-bit key of an id: ample to tell ids apart, 8 bytes a unit."""
    return xxhash.xxh3_64_intdigest(unit_id.encode())


def unit_keys(ids: Sequence[str]) -> np.ndarray:
    """The keys of ``ids``, in order (an empty id gets key 0: callers leave empty ids out)."""
    return np.fromiter((unit_key(unit) if unit else 0 for unit in ids), dtype=KEY, count=len(ids))


@dataclass(frozen=True)
class KeyFile:
    """One live file of the store: its key in the lake, partition, key count and minus list (if any)."""

    name: str
    partition: int
    keys: int
    minus: str = ""
    minus_keys: int = 0


@dataclass(frozen=True)
class Manifest:
    """``_units/units.json``: the store's parameters (fixed when it is built) and its live files."""

    partitions: int = 16
    block: int = 256
    """Keys per block: a bucket lookup reads one block (2 KiB) per file it searches, after the fences (every
    ``block``-th key: a 1/256 share of the store) are read once per process and run. At a billion units a
    worker holds 31 MB of fences; a larger block shrinks them and grows every lookup."""
    fanout: int = 4
    """Files per size tier before they are merged: each partition keeps O(fanout x log(keys)) files."""
    first_tier: int = 4096
    """Files below this many keys are of tier 0; each tier above holds files ``fanout`` times larger."""
    files: tuple[KeyFile, ...] = field(default=())

    def to_bytes(self) -> bytes:
        files = sorted(self.files, key=lambda f: (f.partition, f.name))
        return json.dumps({"format": FORMAT, **asdict(self), "files": [asdict(f) for f in files]}, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        if raw.get("format") != FORMAT:
            raise ValueError(f"{MANIFEST}: format {raw.get('format')!r}, this siftlake reads {FORMAT}")
        return cls(int(raw["partitions"]), int(raw["block"]), int(raw["fanout"]), int(raw["first_tier"]),
                   tuple(KeyFile(**f) for f in raw["files"]))

    def file_name(self, partition: int, stem: str) -> str:
        return f"{UNITS}/p{partition:02d}/{stem}.u64"

    def fence_size(self, keys: int) -> int:
        return -(-keys // self.block)


def read_manifest(lake: Store) -> Manifest | None:
    """The store's manifest, or None when the lake has no store yet."""
    try:
        return Manifest.from_bytes(lake.read_bytes(MANIFEST))
    except FileNotFoundError:
        return None


def file_bytes(keys: np.ndarray, block: int) -> bytes:
    """A key file's content: the sorted unique keys, then the fence."""
    keys = np.asarray(keys, KEY)
    return keys.tobytes() + keys[::block].tobytes()


def member(ordered: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Which of ``keys`` the sorted array ``ordered`` holds (on a memory map, only the pages searched are read)."""
    if len(ordered) == 0 or len(keys) == 0:
        return np.zeros(len(keys), bool)
    at = np.minimum(np.searchsorted(ordered, keys), len(ordered) - 1)
    return np.asarray(ordered[at] == keys)


class KnownUnits:
    """The store opened for lookups (``open``); thread-safe. ``bytes_read`` counts what a bucket lake's lookups
    fetched (fences, minus lists and blocks)."""

    def __init__(self, lake: Store, raw: bytes, ranged: bool | None = None) -> None:
        self.lake, self.raw = lake, raw
        self.manifest = Manifest.from_bytes(raw)
        self.ranged = lake.remote if ranged is None else ranged
        self.bytes_read = 0
        self._count = threading.Lock()
        self._maps: dict[str, np.ndarray] = {}
        self._fences: dict[str, np.ndarray] = {}
        self._minus: dict[str, np.ndarray] = {}
        self._load()

    @classmethod
    def open(cls, lake: Store, previous: KnownUnits | None = None, ranged: bool | None = None) -> KnownUnits:
        """The lake's store; ``previous`` itself when the manifest has not changed since it was opened."""
        try:
            raw = lake.read_bytes(MANIFEST)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{lake.url(MANIFEST)} is missing: a run builds it when it starts") from err
        if previous is not None and previous.raw == raw and previous.lake == lake:
            return previous
        return cls(lake, raw, ranged)

    def _load(self) -> None:
        files = self.manifest.files
        with_minus = [f for f in files if f.minus]
        if not self.ranged:
            for f in files:
                self._maps[f.name] = np.memmap(self.lake.local(f.name), dtype=KEY, mode="r", shape=(f.keys,))
            for f in with_minus:
                self._minus[f.name] = np.fromfile(self.lake.local(f.minus), dtype=KEY)
            return
        fences = [(f.name, 8 * f.keys, 8 * (f.keys + self.manifest.fence_size(f.keys))) for f in files]
        minus = [(f.minus, 0, 8 * f.minus_keys) for f in with_minus]
        blobs = self._read_ranges(fences + minus)
        for f, blob in zip(files, blobs[: len(files)], strict=True):
            self._fences[f.name] = np.frombuffer(blob, KEY)
        for f, blob in zip(with_minus, blobs[len(files):], strict=True):
            self._minus[f.name] = np.frombuffer(blob, KEY)

    def _read_ranges(self, ranges: list[tuple[str, int, int]]) -> list[bytes]:
        if not ranges:
            return []
        blobs = self.lake.fs.cat_ranges([self.lake.path(name) for name, _, _ in ranges], [s for _, s, _ in ranges],
                                        [e for _, _, e in ranges], on_error="raise")
        for (name, start, end), blob in zip(ranges, blobs, strict=True):
            if len(blob) != end - start:
                raise OSError(f"{self.lake.url(name)}: asked for bytes {start}-{end}, got {len(blob)}")
        with self._count:
            self.bytes_read += sum(len(b) for b in blobs)
        return [bytes(b) for b in blobs]

    def contains(self, ids: Sequence[str]) -> np.ndarray:
        """For each id, whether the lake holds its unit (an empty id: never)."""
        keys = unit_keys(ids)
        found = np.zeros(len(ids), bool)
        valid = np.fromiter((bool(unit) for unit in ids), dtype=bool, count=len(ids))
        for held, rows in self.held(keys, valid):
            found[rows[held]] = True
        return found

    def held_by(self, keys: np.ndarray) -> list[tuple[KeyFile, np.ndarray]]:
        """For each live file, which of ``keys`` it holds, less its minus list (what a takedown removes)."""
        out = []
        for f, (held, rows) in zip(self.manifest.files, self.held(keys, np.ones(len(keys), bool)), strict=True):
            out.append((f, keys[rows[held]]))
        return out

    def held(self, keys: np.ndarray, valid: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per live file (in manifest order): a mask over ``rows``, the positions in ``keys`` of its partition."""
        partition = keys % np.uint64(self.manifest.partitions)
        per_file = [np.flatnonzero(valid & (partition == f.partition)) for f in self.manifest.files]
        if self.ranged:
            masks = self._held_ranged(keys, per_file)
        else:
            masks = [member(self._maps[f.name], keys[rows]) for f, rows in zip(self.manifest.files, per_file,
                                                                                strict=True)]
        for f, rows, mask in zip(self.manifest.files, per_file, masks, strict=True):
            if f.name in self._minus:
                mask &= ~member(self._minus[f.name], keys[rows])
        return list(zip(masks, per_file, strict=True))

    def _held_ranged(self, keys: np.ndarray, per_file: list[np.ndarray]) -> list[np.ndarray]:
        """Bucket lookups: the fence tells which block of a file could hold each key; every block needed by any
        file is fetched in one ``cat_ranges`` call (blocks that several keys need, once)."""
        block = self.manifest.block
        wanted: list[tuple[int, np.ndarray, tuple[str, int, int]]] = []
        for number, (f, rows) in enumerate(zip(self.manifest.files, per_file, strict=True)):
            at = np.searchsorted(self._fences[f.name], keys[rows], side="right") - 1
            for b in np.unique(at[at >= 0]).tolist():
                span = (f.name, 8 * b * block, 8 * min((b + 1) * block, f.keys))
                wanted.append((number, np.flatnonzero(at == b), span))
        masks = [np.zeros(len(rows), bool) for rows in per_file]
        blobs = self._read_ranges([span for _, _, span in wanted])
        for (number, within, _), blob in zip(wanted, blobs, strict=True):
            masks[number][within] = member(np.frombuffer(blob, KEY), keys[per_file[number][within]])
        return masks


def all_known_keys(lake: Store) -> np.ndarray:
    """Every key the store holds, sorted (reads the whole store: for checks and tests, never for a run)."""
    manifest = read_manifest(lake)
    if manifest is None:
        return _EMPTY
    parts = [_EMPTY]
    for f in manifest.files:
        keys = np.frombuffer(lake.read_bytes(f.name), KEY)[: f.keys]
        if f.minus:
            keys = keys[~member(np.frombuffer(lake.read_bytes(f.minus), KEY), keys)]
        parts.append(keys)
    return np.unique(np.concatenate(parts))

"""Keeping the known-units store (``flows.lake.units``) in step with the tables: built once for a lake written before
it, a run's keys staged for its commit, a takedown's keys removed in its commit, and each partition's files merged
in size tiers after a commit. All of it runs under the lake's lock.

A merge is crash-safe because the manifest alone names the live files: the merged file is written first under a
new name (a leftover until the manifest names it), then the manifest that names it instead of its inputs replaces
the old one (one rename, or one PUT), then the inputs are deleted (leftovers once the manifest no longer names
them). A reader sees the old files or the new one, each whole, and never misses a key; the next merge deletes
whatever a crash left behind (``sweep``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from flows.lake.commit import fault_point
from flows.lake.contents import known_unit_ids
from flows.lake.layout import UNITS, RunPaths, default_scratch
from flows.lake.units import KEY, MANIFEST, KeyFile, KnownUnits, Manifest, file_bytes, member, read_manifest, unit_keys
from flows.storage import Store

SLICE_KEYS = 1 << 22
"""A merge holds about this many keys (32 MiB) at a time, whatever the size of the files it merges."""
_EMPTY = np.empty(0, KEY)


def ensure(lake: Store, shape: Manifest | None = None) -> int | None:
    """Build the store from the tables when the lake has none; return how many keys it holds then, or None when
    the lake had a store already.

    A lake written before the store (or a new one) gets it at its next run, from one scan of the ``doc_id`` and
    ``unit_id`` columns of both tables. The files go straight into ``_units/`` and the manifest last: until the
    manifest is there they are leftovers, and an interrupted build is simply redone by the next run. ``shape``
    sets the store's parameters (its files are ignored; default ``Manifest()``).
    """
    if lake.exists(MANIFEST):
        return None
    lake.delete(UNITS)  # an interrupted build's files
    keys = known_unit_ids(lake)
    manifest = replace(shape or Manifest(), files=())
    partition = keys % np.uint64(manifest.partitions)
    stem = f"build-{uuid.uuid4().hex[:12]}"
    files = []
    for number in range(manifest.partitions):
        part = keys[partition == number]
        if part.size:
            name = manifest.file_name(number, stem)
            lake.write_bytes(name, file_bytes(part, manifest.block))
            files.append(KeyFile(name, number, int(part.size)))
    lake.write_bytes(MANIFEST, replace(manifest, files=tuple(files)).to_bytes())
    return int(keys.size)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _stage_manifest(paths: RunPaths, manifest: Manifest) -> str:
    _write(paths.staging / MANIFEST, manifest.to_bytes())
    return MANIFEST


def stage_run(paths: RunPaths, ids: Sequence[str]) -> list[str]:
    """Stage the keys of the run's ids (its documents and rejects), one file per partition they fall in, and the
    manifest naming them; return the moves for the run's commit (none when it has no id)."""
    return stage_run_keys(paths, unit_keys([unit for unit in ids if unit]))


def stage_run_keys(paths: RunPaths, keys: np.ndarray) -> list[str]:
    """``stage_run`` from the ids' keys (``unit_keys``; 8 bytes an id, where the ids would be ~80)."""
    manifest = read_manifest(paths.lake)
    if manifest is None:
        raise FileNotFoundError(f"{paths.lake.url(MANIFEST)} is missing: the run builds it when it starts")
    keys = np.unique(np.asarray(keys, dtype=KEY))
    if not keys.size:
        return []
    stem = f"run-{paths.run_id}"
    files = [f for f in manifest.files if not f.name.endswith(f"/{stem}.u64")]  # a retried write stages anew
    moves = []
    partition = keys % np.uint64(manifest.partitions)
    for number in np.unique(partition).tolist():
        part = keys[partition == number]
        name = manifest.file_name(number, stem)
        _write(paths.staging / name, file_bytes(part, manifest.block))
        files.append(KeyFile(name, number, int(part.size)))
        moves.append(name)
    return [*moves, _stage_manifest(paths, replace(manifest, files=tuple(files)))]


def stage_forgotten(paths: RunPaths, doc_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """Stage the removal of a takedown's documents from the store: each file holding some of their keys gets a
    new minus list (its old one and these keys), named by the manifest staged with it. Return the moves and the
    deletes (the minus lists replaced) for the takedown's commit; none when the lake has no store yet (the
    first run builds it from the tables, which the takedown has changed)."""
    manifest = read_manifest(paths.lake)
    if manifest is None:
        return [], []
    known = KnownUnits.open(paths.lake)
    keys = np.unique(unit_keys([unit for unit in doc_ids if unit]))
    changed: dict[str, KeyFile] = {}
    moves, deletes = [], []
    for f, held in known.held_by(keys):
        if not held.size:
            continue
        old = np.frombuffer(paths.lake.read_bytes(f.minus), KEY) if f.minus else _EMPTY
        minus = np.union1d(old, held).astype(KEY)
        name = f"{f.name.removesuffix('.u64')}.minus-{paths.run_id}.u64"
        _write(paths.staging / name, minus.tobytes())
        changed[f.name] = replace(f, minus=name, minus_keys=int(minus.size))
        moves.append(name)
        deletes += [f.minus] if f.minus else []
    if not changed:
        return [], []
    files = tuple(changed.get(f.name, f) for f in manifest.files)
    return [*moves, _stage_manifest(paths, replace(manifest, files=files))], deletes


# -- merging ---------------------------------------------------------------------------------


def tier(keys: int, manifest: Manifest) -> int:
    """Size tier of a file: 0 below ``first_tier`` keys, then one more each time the size is ``fanout`` times larger."""
    number, cap = 0, manifest.first_tier
    while keys >= cap:
        number, cap = number + 1, cap * manifest.fanout
    return number


def full_tiers(manifest: Manifest) -> list[list[KeyFile]]:
    """The groups of files to merge: every tier of a partition that holds ``fanout`` files or more."""
    tiers: dict[tuple[int, int], list[KeyFile]] = {}
    for f in manifest.files:
        tiers.setdefault((f.partition, tier(f.keys, manifest)), []).append(f)
    return [group for _, group in sorted(tiers.items()) if len(group) >= manifest.fanout]


def sweep(lake: Store, manifest: Manifest) -> list[str]:
    """Delete what a crash left in ``_units/`` (files the manifest does not name); return their keys."""
    live = {MANIFEST} | {f.name for f in manifest.files} | {f.minus for f in manifest.files if f.minus}
    stale = [key for key in lake.files(UNITS) if key not in live]
    for key in stale:
        lake.delete(key)
    return stale


def merge(lake: Store, scratch: str = "", check: Callable[[], None] | None = None) -> list[str]:
    """Merge every full tier of every partition into one file, until none is full; return the merged files.

    Run after a commit, under the lake's lock; ``check`` raises when the lock is lost (a bucket lake's lease),
    and is called before anything is deleted or the manifest replaced. A bucket lake's files are merged in a
    local folder (``scratch``, default ``default_scratch()``); memory stays about ``SLICE_KEYS`` keys whatever
    the files' sizes.
    """
    check = check or (lambda: None)
    manifest = read_manifest(lake)
    if manifest is None:
        return []
    check()
    sweep(lake, manifest)
    merged: list[str] = []
    with _workdir(lake, scratch) as work:
        while groups := full_tiers(manifest):
            outputs = [_merge_group(lake, manifest, group, work) for group in groups]
            fault_point("units:merged")  # crash tests only (SIFTLAKE_FAULT)
            inputs = [f for group in groups for f in group]
            kept = [f for f in manifest.files if f not in inputs]
            manifest = replace(manifest, files=tuple(kept + [f for f in outputs if f is not None]))
            check()
            lake.write_bytes(MANIFEST, manifest.to_bytes())
            fault_point("units:published")
            for f in inputs:
                lake.delete(f.name)
                if f.minus:
                    lake.delete(f.minus)
            merged += [f.name for f in outputs if f is not None]
    return merged


@contextlib.contextmanager
def _workdir(lake: Store, scratch: str) -> Iterator[Path]:
    """Where a bucket lake's files are merged (a local lake's are merged in place)."""
    work = Path(scratch or default_scratch()) / lake.digest / f"units-{uuid.uuid4().hex[:8]}"
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _merge_group(lake: Store, manifest: Manifest, group: list[KeyFile], work: Path) -> KeyFile | None:
    """One file for ``group`` (one partition's full tier), published under a new name; None when no key is left."""
    name = manifest.file_name(group[0].partition, f"merge-{uuid.uuid4().hex[:12]}")
    target = work / name if lake.remote else lake.local(name).with_name(f".{Path(name).name}.partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    sources = [(_keys_of(lake, f, work), _minus_of(lake, f)) for f in group]
    count = merge_into(sources, target, manifest.block)
    del sources
    shutil.rmtree(work / "inputs", ignore_errors=True)  # a bucket lake's downloaded inputs
    if count == 0:
        target.unlink()
        return None
    if lake.remote:
        lake.upload(target, name)
        target.unlink()
    else:
        os.replace(target, lake.local(name))
    return KeyFile(name, group[0].partition, count)


def _keys_of(lake: Store, f: KeyFile, work: Path) -> np.ndarray:
    """A file's keys as a memory map (a bucket lake's file is downloaded to ``work`` first)."""
    local = lake.local(f.name) if not lake.remote else work / "inputs" / f.name
    if lake.remote:
        lake.download(f.name, local)
    return np.memmap(local, dtype=KEY, mode="r", shape=(f.keys,))


def _minus_of(lake: Store, f: KeyFile) -> np.ndarray:
    return np.frombuffer(lake.read_bytes(f.minus), KEY) if f.minus else _EMPTY


def merge_into(sources: Sequence[tuple[np.ndarray, np.ndarray]], target: Path, block: int) -> int:
    """Write the union of the sources' sorted keys, each less its minus list, with its fence, to ``target``;
    return the number of keys. The key range is cut into slices of about ``SLICE_KEYS`` keys, merged one at a
    time (keys are hashes: spread evenly over the range)."""
    total = sum(len(keys) for keys, _ in sources)
    slices = max(1, -(-total // SLICE_KEYS))
    bounds = [(number << 64) // slices for number in range(slices)] + [1 << 64]
    count, fences = 0, [_EMPTY]
    with open(target, "wb") as out:
        for low, high in itertools.pairwise(bounds):
            parts = [_EMPTY]
            for keys, minus in sources:
                start = int(np.searchsorted(keys, np.uint64(low)))
                end = len(keys) if high >> 64 else int(np.searchsorted(keys, np.uint64(high)))
                part = np.asarray(keys[start:end])
                parts.append(part[~member(minus, part)] if len(minus) else part)
            merged = np.unique(np.concatenate(parts)).astype(KEY)
            fences.append(merged[(-count) % block :: block])
            out.write(merged.tobytes())
            count += len(merged)
        out.write(np.concatenate(fences).astype(KEY).tobytes())
    return count

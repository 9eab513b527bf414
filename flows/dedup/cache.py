"""The lake's near-duplicate index on this machine: what a task opens of it, the listing a run plans from, when
segments are merged (compaction) or folded from older formats into the partitions (migration), and putting them
back on the lake.

A local lake's index is used in place. A bucket lake's is cached partition by partition in
``<cache>/<lake digest>/_index`` (``index.json``, ``pNNNN/<name>``): a task opens only the partitions it works
on (``PartitionCache``), bringing each up to date first. Published segments never change, so a partition's
cache only ever downloads new segments and drops those the lake no longer lists; every copy goes to a
``.<name>.partial`` folder renamed into place when complete. Each cached partition has two lock files under
``<cache>/<lake digest>/locks``: ``pNNNN.use``, held shared while a task uses the partition and taken
exclusively to evict it, and ``pNNNN.fetch``, held while one process brings it up to date (two worker
processes never download into one folder). The cache is bounded (``cache_max_bytes``): after each fetch, the
least recently used partitions no process holds are evicted, of any lake, while the cache is over the bound.

Lakes with older-format segments (``segments/<name>``) or segments of an earlier banding are searched whole,
as the format-3 partition tasks cannot (``local_index``), until ``siftlake index migrate`` folds them.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from flows.dedup.config import DedupConfig
from flows.dedup.index import INDEX_FILE, LakeIndex, staged_moves
from flows.dedup.index.compaction import is_due
from flows.dedup.index.layout import (
    banding_of,
    check_index,
    check_segment,
    live_partitions,
    partition_folders,
    partition_name,
)
from flows.dedup.index.segment import live_segments
from flows.lake.layout import INDEX, SEGMENT_META, SEGMENTS, RunPaths
from flows.storage import Store

# -- the near-duplicate index, on this machine ------------------------------------------------


def default_cache() -> str:
    """Where index segments of remote lakes are cached: ``SIFTLAKE_CACHE``, else ``$XDG_CACHE_HOME/siftlake``
    (``~/.cache/siftlake`` when that is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return os.environ.get("SIFTLAKE_CACHE") or str(Path(base) / "siftlake")


def _published(lake: Store, prefix: str = INDEX) -> tuple[dict[str, dict[str, int]], bool]:
    """The lake's published segment folders under ``prefix`` (``pNNNN/<name>`` or ``segments/<name>``, relative
    to the index) with their objects' keys and sizes, from one listing; and whether the index has ``index.json``."""
    folders: dict[str, dict[str, int]] = {}
    has_file = False
    for key, size in lake.sizes(prefix).items():
        parts = key.split("/")[1:]
        if parts == [INDEX_FILE]:
            has_file = True
        elif len(parts) == 3 and not parts[1].startswith((".", "_")):
            folders.setdefault(f"{parts[0]}/{parts[1]}", {})[key] = size
    # A folder without its meta.json is still being published (or deleted): not there yet.
    return {f: keys for f, keys in folders.items() if f"{INDEX}/{f}/{SEGMENT_META}" in keys}, has_file


def _cached_folders(cached: Path) -> list[Path]:
    groups = [*partition_folders(cached).values(), cached / SEGMENTS]
    return [p for g in groups if g.is_dir() for p in sorted(g.iterdir()) if p.is_dir()]


def local_index(lake: Store, cache_dir: str = "", max_bytes: int = 0) -> tuple[Path, dict[str, int]]:
    """A local folder with the lake's whole index, and what it cost to bring it up to date: for lakes searched
    whole (``IndexListing.searched_whole``), migration and the lake operations (forget). Runs on format-3 lakes
    open only the partitions a task works on (``PartitionCache``).

    A local lake's index is its own ``_index``. A remote lake's is this machine's cache of it
    (``cache_dir/<lake digest>/_index``): segments never change once published, so only segments
    not cached yet are downloaded, and segments the lake no longer lists (compacted away) are
    dropped. The cache can be deleted at any time; the next run downloads what it needs again. The counts
    are of segment names (a run's segment is one name in each partition it has rows in).
    """
    if not lake.remote:
        return lake.local(INDEX), {}
    root = Path(cache_dir or default_cache()) / lake.digest
    cached = root / INDEX
    cached.mkdir(parents=True, exist_ok=True)
    folders, has_file = _published(lake)
    downloaded: set[str] = set()
    size = 0
    for folder, keys in sorted(folders.items()):
        if not (cached / folder / SEGMENT_META).exists():
            size += _download_segment(lake, keys, cached / folder)
            downloaded.add(folder.split("/")[1])
    for path in _cached_folders(cached):
        if f"{path.parent.name}/{path.name}" not in folders:
            shutil.rmtree(path, ignore_errors=True)
    if has_file and not (cached / INDEX_FILE).exists():
        lake.download(f"{INDEX}/{INDEX_FILE}", cached / INDEX_FILE)
    elif not has_file:
        (cached / INDEX_FILE).unlink(missing_ok=True)
    os.utime(root)
    bound_cache(root.parent, max_bytes, keep=root)
    return cached, {"index_segments": len({f.split("/")[1] for f in folders}),
                    "index_segments_downloaded": len(downloaded), "index_bytes_downloaded": size}


def _download_segment(lake: Store, keys: Iterable[str], target: Path) -> int:
    """Copy one published segment (its object ``keys``) into the cache folder ``target``; returns its bytes."""
    partial = _partial(target)
    size = 0
    for key in sorted(keys, key=lambda k: (k.endswith(f"/{SEGMENT_META}"), k)):
        local = partial / key.rsplit("/", 1)[-1]
        lake.download(key, local)
        size += local.stat().st_size
    _install(partial, target)
    return size


def _partial(target: Path) -> Path:
    """Where a copy of ``target`` is made (``.<name>.partial``, next to it), cleared of any earlier attempt."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    return partial


def _install(partial: Path, target: Path) -> None:
    """Put a complete copy in the place of ``target``: the cache never holds half a segment under its name."""
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(target)


def bound_cache(cache_root: Path, max_bytes: int, keep: Path | None = None) -> int:
    """Evict cached partitions (of any lake; ``segments`` folders of older lakes too), least recently used first,
    while the cache under ``cache_root`` is over ``max_bytes``; never those a process holds (``PartitionCache``) nor
    any of the lake cached at ``keep``. Returns the bytes evicted."""
    if max_bytes <= 0 or not cache_root.is_dir():
        return 0
    units = []
    for lake_dir in (p for p in cache_root.iterdir() if p.is_dir()):
        index_dir = lake_dir / INDEX
        for folder in [*partition_folders(index_dir).values(), index_dir / SEGMENTS]:
            if folder.is_dir():
                used = _lock_path(lake_dir, folder.name, "use")
                when = used.stat().st_mtime if used.exists() else folder.stat().st_mtime
                units.append((when, folder, used, _folder_bytes(folder), lake_dir == keep))
    total, evicted = sum(u[3] for u in units), 0
    for _, folder, used, size, kept in sorted(units, key=lambda u: u[0]):
        if total <= max_bytes:
            break
        if kept or not _evict(folder, used):
            continue
        total, evicted = total - size, evicted + size
    return evicted


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _evict(folder: Path, used: Path) -> bool:
    """Delete a cached partition unless a process holds it (its use lock, tried without waiting)."""
    used.parent.mkdir(parents=True, exist_ok=True)
    with open(used, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True


def _lock_path(lake_dir: Path, name: str, kind: str) -> Path:
    return lake_dir / "locks" / f"{name}.{kind}"


@contextmanager
def _locked(path: Path, how: int) -> Iterator[BinaryIO]:
    """``path`` (created when missing) held with ``flock(how)`` until the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, how)
        yield handle


# -- the partitions a task works on ------------------------------------------------------------


@dataclass
class PartitionCache:
    """The partitions of a lake's index a task opens: a local lake's in place; a bucket lake's in this machine's
    cache, each brought up to date (new segments downloaded, dropped ones removed) and held while in use
    (module docstring). ``downloaded`` counts the bytes this object fetched."""

    lake: Store
    cache_dir: str = ""
    max_bytes: int = 0
    downloaded: int = field(default=0)

    @property
    def root(self) -> Path:
        """This lake's folder in the cache."""
        return Path(self.cache_dir or default_cache()) / self.lake.digest

    @property
    def index_dir(self) -> Path:
        """The index as tasks open it: the lake's own, or its cache on this machine."""
        return self.root / INDEX if self.lake.remote else self.lake.local(INDEX)

    @contextmanager
    def opened(self, partitions: Iterable[int], config: DedupConfig) -> Iterator[LakeIndex]:
        """The index's ``partitions`` opened (``LakeIndex.open_partitions``), held until the block ends."""
        with ExitStack() as stack:
            if self.lake.remote:
                before = self.downloaded
                for part in sorted(set(partitions)):
                    stack.enter_context(self.held(part))
                _fetch_index_file(self.lake, self.root)
                if self.downloaded > before:
                    bound_cache(self.root.parent, self.max_bytes)
            index = LakeIndex.open_partitions(self.index_dir, config, partitions)
            stack.callback(index.close)
            yield index

    @contextmanager
    def held(self, part: int, writing: bool = False) -> Iterator[Path]:
        """Partition ``part``'s folder, up to date, and kept from eviction until the block ends (``writing``: and
        from other processes' fetches, for compaction)."""
        folder = self.index_dir / partition_name(part)
        if not self.lake.remote:
            yield folder
            return
        used = _lock_path(self.root, folder.name, "use")
        with _locked(used, fcntl.LOCK_SH), ExitStack() as fetching:
            os.utime(used)  # least recently used goes first
            fetching.enter_context(_locked(_lock_path(self.root, folder.name, "fetch"), fcntl.LOCK_EX))
            self.downloaded += self._sync(folder)
            if not writing:
                fetching.close()
            yield folder

    def _sync(self, folder: Path) -> int:
        """Bring one cached partition to what the lake lists now; the bytes downloaded."""
        published, _ = _published(self.lake, f"{INDEX}/{folder.name}")
        size = 0
        for relative, keys in sorted(published.items()):
            target = self.index_dir / relative
            if not (target / SEGMENT_META).exists():
                size += _download_segment(self.lake, keys, target)
        for path in folder.iterdir() if folder.is_dir() else []:
            listed = f"{folder.name}/{path.name}" in published
            if path.is_dir() and not path.name.startswith((".", "_")) and not listed:
                shutil.rmtree(path, ignore_errors=True)  # compacted away on the lake
        return size


def _fetch_index_file(lake: Store, root: Path, refresh: bool = False) -> None:
    """``index.json`` (written once, when the index is created) into the lake's cache ``root``, when it lacks it
    and the lake has it; ``refresh`` (once a run, by the flow's listing): made what the lake has now, so an index
    moved aside and created again is not checked against the old one's file."""
    local = root / INDEX / INDEX_FILE
    if local.exists() and not refresh:
        return
    with _locked(_lock_path(root, INDEX_FILE, "fetch"), fcntl.LOCK_EX):
        if refresh or not local.exists():
            if lake.exists(f"{INDEX}/{INDEX_FILE}"):
                lake.download(f"{INDEX}/{INDEX_FILE}", local)
            else:
                local.unlink(missing_ok=True)


# -- the listing a run plans from --------------------------------------------------------------


@dataclass(frozen=True)
class IndexListing:
    """The lake's published index as the flow lists it once per run: ``index.json``, each partition's live
    segments (name, ``meta.json``), the older-format segments, and the bytes published (bucket lakes)."""

    index_file: dict[str, Any] | None
    partitions: dict[int, list[tuple[str, dict[str, Any]]]]
    legacy: list[str]
    size: int = 0

    @property
    def segments(self) -> int:
        """Live segment names (a run's segment is one name in each partition it has rows in)."""
        return len({*self.legacy, *(name for live in self.partitions.values() for name, _ in live)})

    def searched_whole(self, config: DedupConfig) -> bool:
        """Whether a run must search the index whole (``LakeIndex.query_unpartitioned``): it holds older-format
        segments, or band rows of another banding, which the partition tasks cannot search."""
        banding = (config.bands, config.rows)
        return bool(self.legacy) or any(int(meta["rows"]) and banding_of(meta) != banding
                                        for live in self.partitions.values() for _, meta in live)

    def due(self, added: dict[int, dict[str, Any]]) -> list[int]:
        """The partitions with a full size tier once the run's segments (``meta.json`` by partition) are in."""
        return sorted(part for part in set(self.partitions) | set(added)
                      if is_due([m for _, m in self.partitions.get(part, [])] + ([added[part]] if part in added
                                                                                 else [])))


def list_index(lake: Store, config: DedupConfig, cache_dir: str = "") -> IndexListing:
    """The lake's index as published now, checked against ``config`` (``IncompatibleIndexError`` otherwise).

    A bucket lake's is one listing plus the ``meta.json`` of each segment this machine has not seen (they never
    change: kept in ``<cache>/<lake digest>/metas``); no segment is downloaded."""
    if not lake.remote:
        return _list_local(lake.local(INDEX), config)
    root = Path(cache_dir or default_cache()) / lake.digest
    folders, has_file = _published(lake, INDEX)
    _fetch_index_file(lake, root, refresh=True)
    info = check_index(root / INDEX, config) if has_file else None
    partitions: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    legacy = []
    for relative in sorted(folders):
        group, name = relative.split("/")
        if group == SEGMENTS:
            legacy.append(name)
            continue
        meta = _cached_meta(lake, root / "metas" / f"{relative}.json", f"{INDEX}/{relative}/{SEGMENT_META}")
        partitions.setdefault(int(group[1:]), []).append((name, meta))
    for part, segments in list(partitions.items()):
        replaced = {r for _, meta in segments for r in meta.get("replaces", [])}
        partitions[part] = [(name, meta) for name, meta in segments if name not in replaced]
        for name, meta in partitions[part]:
            check_segment(Path(lake.url(f"{INDEX}/{partition_name(part)}/{name}")), meta, part, config, root / INDEX)
    _drop_unlisted_metas(root / "metas", folders)
    size = sum(sum(objects.values()) for objects in folders.values())
    return IndexListing(info, {p: live for p, live in partitions.items() if live}, legacy, size)


def _list_local(index_dir: Path, config: DedupConfig) -> IndexListing:
    info = check_index(index_dir, config)
    partitions = {part: [(path.name, meta) for path, meta in live]
                  for part, live in live_partitions(index_dir, config).items()}
    return IndexListing(info, partitions, [path.name for path, _ in live_segments(index_dir)])


def _drop_unlisted_metas(metas: Path, folders: dict[str, dict[str, int]]) -> None:
    for path in metas.glob("*/*.json"):
        if f"{path.parent.name}/{path.stem}" not in folders:
            path.unlink(missing_ok=True)


def _cached_meta(lake: Store, local: Path, key: str) -> dict[str, Any]:
    if not local.exists():
        lake.download(key, local)
    return dict(json.loads(local.read_text()))


def staged_index(paths: RunPaths) -> Path:
    """Where the run's index segments are staged: ``<staging>/_index``, laid out like the lake's."""
    return paths.staging / INDEX


def index_moves(paths: RunPaths) -> list[str]:
    """The run's staged index folders (and a new index's ``index.json``, first), relative to staging."""
    return staged_moves(paths.staging, INDEX, paths.run_id)


def cache_segment(paths: RunPaths, cache_dir: str = "") -> None:
    """Keep a copy of the run's own index segments in this machine's cache (a remote lake's next run then
    need not download them), each under its partition's fetch lock. Call before ``commit``: commit removes the
    local staging folder."""
    if not paths.lake.remote:
        return
    root = Path(cache_dir or default_cache()) / paths.lake.digest
    for relative in index_moves(paths):
        local, target = paths.staging / relative, root / relative
        if local.is_file():  # a new index's index.json
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, target)
            continue
        with _locked(_lock_path(root, target.parent.name, "fetch"), fcntl.LOCK_EX):
            partial = _partial(target)
            shutil.copytree(local, partial)
            _install(partial, target)

"""The lake's near-duplicate index on this machine: the cache of a bucket lake's index, where the run's own
segments are staged and cached, and when segments are merged (compaction) or folded from older formats into
the partitions (migration), and put back on the lake.

A local lake's index is used in place. A bucket lake's is mirrored in ``<cache>/<lake digest>/_index``, folder
for folder (``index.json``, ``pNNNN/<name>``, and ``segments/<name>`` of older lakes): published segments
never change, so the mirror only ever downloads new ones and drops those the lake no longer lists; every
copy into it goes to a ``.<name>.partial`` folder renamed into place when complete. The whole index is
mirrored: a machine that queries only some partitions could cache only those, which is left for later.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from flows.dedup.config import DedupConfig
from flows.dedup.index import INDEX_FILE, compact, migrate, staged_moves
from flows.dedup.index.layout import partition_folders
from flows.dedup.index.segment import live_segments
from flows.lake.layout import INDEX, SEGMENT_META, SEGMENTS, RunPaths
from flows.storage import Store

# -- the near-duplicate index, on this machine ------------------------------------------------


def default_cache() -> str:
    """Where index segments of remote lakes are cached: ``SIFTLAKE_CACHE``, else ``$XDG_CACHE_HOME/siftlake``
    (``~/.cache/siftlake`` when that is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return os.environ.get("SIFTLAKE_CACHE") or str(Path(base) / "siftlake")


def _published(lake: Store) -> tuple[dict[str, list[str]], bool]:
    """The lake's published segment folders (``pNNNN/<name>`` or ``segments/<name>``, relative to the index)
    with their object keys, from one listing; and whether it has ``index.json``."""
    folders: dict[str, list[str]] = {}
    has_file = False
    for key in lake.files(INDEX):
        parts = key.split("/")[1:]
        if parts == [INDEX_FILE]:
            has_file = True
        elif len(parts) == 3 and not parts[1].startswith((".", "_")):
            folders.setdefault(f"{parts[0]}/{parts[1]}", []).append(key)
    # A folder without its meta.json is still being published (or deleted): not there yet.
    return {f: keys for f, keys in folders.items() if f"{INDEX}/{f}/{SEGMENT_META}" in keys}, has_file


def _cached_folders(cached: Path) -> list[Path]:
    groups = [*partition_folders(cached).values(), cached / SEGMENTS]
    return [p for g in groups if g.is_dir() for p in sorted(g.iterdir()) if p.is_dir()]


def local_index(lake: Store, cache_dir: str = "", max_bytes: int = 0) -> tuple[Path, dict[str, int]]:
    """A local folder with the lake's index, and what it cost to bring it up to date.

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
    _bound_cache(root.parent, max_bytes, keep=root)
    return cached, {"index_segments": len({f.split("/")[1] for f in folders}),
                    "index_segments_downloaded": len(downloaded), "index_bytes_downloaded": size}


def _download_segment(lake: Store, keys: list[str], target: Path) -> int:
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


def _bound_cache(cache_root: Path, max_bytes: int, keep: Path) -> None:
    """Drop other lakes' cached indexes, least recently used first, while the cache is over ``max_bytes``."""
    if max_bytes <= 0:
        return
    lakes = sorted((p for p in cache_root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    sizes = {p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) for p in lakes}
    total = sum(sizes.values())
    for path in lakes:
        if total <= max_bytes:
            break
        if path != keep:
            shutil.rmtree(path, ignore_errors=True)
            total -= sizes[path]


def staged_index(paths: RunPaths) -> Path:
    """Where the run's index segments are staged: ``<staging>/_index``, laid out like the lake's."""
    return paths.staging / INDEX


def index_moves(paths: RunPaths) -> list[str]:
    """The run's staged index folders (and a new index's ``index.json``, first), relative to staging."""
    return staged_moves(paths.staging, INDEX, paths.run_id)


def cache_segment(paths: RunPaths, cache_dir: str = "") -> None:
    """Keep a copy of the run's own index segments in this machine's cache (a remote lake's next run then
    need not download them). Call before ``commit``: commit removes the local staging folder."""
    if not paths.lake.remote:
        return
    root = Path(cache_dir or default_cache()) / paths.lake.digest
    for relative in index_moves(paths):
        local, target = paths.staging / relative, root / relative
        if local.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, target)
            continue
        partial = _partial(target)
        shutil.copytree(local, partial)
        _install(partial, target)


# -- merging and folding segments, and putting them on the lake ------------------------------

MIGRATE_ENTRIES_PER_RUN = 1_000_000
"""Entries of older-format segments folded into the partitions after each run (at least one segment)."""


def _upload_segment(lake: Store, segment_dir: Path) -> None:
    """Put a segment written in this machine's cache on a bucket lake, ``meta.json`` last, then delete the
    segments it replaces in its partition (readers skip them from the moment the meta is there)."""
    partition = segment_dir.parent.name
    prefix = f"{INDEX}/{partition}/{segment_dir.name}"
    for path in sorted(segment_dir.iterdir(), key=lambda p: (p.name == SEGMENT_META, p.name)):
        lake.upload(path, f"{prefix}/{path.name}")
    for name in json.loads((segment_dir / SEGMENT_META).read_text()).get("replaces", []):
        lake.delete(f"{INDEX}/{partition}/{name}")


def _upload_migrated(lake: Store, index_dir: Path, copies: list[Path], legacy: str) -> None:
    """Put one folded legacy segment's copies on a bucket lake (``index.json`` first when it has none), then
    delete the legacy segment there, its ``meta.json`` first (so no reader takes the rest for a segment)."""
    if not lake.exists(f"{INDEX}/{INDEX_FILE}"):
        lake.upload(index_dir / INDEX_FILE, f"{INDEX}/{INDEX_FILE}")
    for copy in copies:
        if not lake.exists(f"{INDEX}/{copy.parent.name}/{copy.name}/{SEGMENT_META}"):
            _upload_segment(lake, copy)
    lake.delete(f"{INDEX}/{SEGMENTS}/{legacy}/{SEGMENT_META}")
    lake.delete(f"{INDEX}/{SEGMENTS}/{legacy}")


def migrate_lake(lake: Store, index_dir: Path, config: DedupConfig, max_entries: int | None = None) -> list[str]:
    """Fold older-format segments into the partitions (``flows.dedup.index.migration``); a bucket lake's are
    folded in this machine's cache and put on the store. Returns the names folded."""
    if not live_segments(index_dir):
        return []
    if not lake.remote:
        return migrate(index_dir, config, max_entries)
    return migrate(index_dir, config, max_entries, lambda copies, legacy: _upload_migrated(lake, index_dir, copies,
                                                                                          legacy))


def compact_if_needed(lake: Store, index_dir: Path, config: DedupConfig, run_id: str) -> str | None:
    """Fold some older-format segments into the partitions, then merge each partition's full size tiers; runs
    under the lake lock, between runs. Returns a summary of what was done, or None when nothing was.

    A bucket lake's segments are merged in this machine's cache, then each merged one is put on the store.
    """
    folded = migrate_lake(lake, index_dir, config, MIGRATE_ENTRIES_PER_RUN)
    upload = (lambda segment: _upload_segment(lake, segment)) if lake.remote else None
    merged = compact(index_dir, config, f"compact-{run_id}", published=upload)
    if not folded and not merged:
        return None
    parts = [f"folded {len(folded)} older-format segment(s) into the partitions"] if folded else []
    if merged:
        parts.append(f"merged segments into {len(merged)} in {len({m.parent.name for m in merged})} partition(s)")
    return "; ".join(parts)

"""The lake's near-duplicate index on this machine: the cache of a bucket lake's segments, where the run's
own segment is staged and cached, and when segments are merged (compaction) and put back on the lake.

A local lake's index is used in place. A bucket lake's is mirrored in ``<cache>/<lake digest>/_index``:
published segments never change, so the mirror only ever downloads new ones and drops those the lake no
longer lists; every copy into it goes to a ``.<name>.partial`` folder renamed into place when complete.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from flows.dedup.config import DedupConfig
from flows.dedup.index.compaction import compact, segment_count
from flows.lake.layout import INDEX, SEGMENT_META, SEGMENTS, RunPaths
from flows.storage import Store

# -- the near-duplicate index, on this machine ------------------------------------------------


def default_cache() -> str:
    """Where index segments of remote lakes are cached: ``SIFTLAKE_CACHE``, else ``$XDG_CACHE_HOME/siftlake``
    (``~/.cache/siftlake`` when that is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return os.environ.get("SIFTLAKE_CACHE") or str(Path(base) / "siftlake")


def local_index(lake: Store, cache_dir: str = "", max_bytes: int = 0) -> tuple[Path, dict[str, int]]:
    """A local folder with the lake's index, and what it cost to bring it up to date.

    A local lake's index is its own ``_index``. A remote lake's is this machine's cache of it
    (``cache_dir/<lake digest>/_index``): segments never change once published, so only segments
    not cached yet are downloaded, and segments the lake no longer lists (compacted away) are
    dropped. The cache can be deleted at any time; the next run downloads what it needs again.
    """
    if not lake.remote:
        return lake.local(INDEX), {}
    root = Path(cache_dir or default_cache()) / lake.digest
    cached = root / INDEX / SEGMENTS
    cached.mkdir(parents=True, exist_ok=True)
    stats = {"index_segments": 0, "index_segments_downloaded": 0, "index_bytes_downloaded": 0}
    published = set()
    for name in lake.children(f"{INDEX}/{SEGMENTS}"):
        if name.startswith((".", "_")):
            continue
        keys = lake.files(f"{INDEX}/{SEGMENTS}/{name}")
        if f"{INDEX}/{SEGMENTS}/{name}/{SEGMENT_META}" not in keys:
            continue  # still being published
        published.add(name)
        if not (cached / name / SEGMENT_META).exists():
            stats["index_bytes_downloaded"] += _download_segment(lake, keys, cached / name)
            stats["index_segments_downloaded"] += 1
    for path in cached.iterdir():
        if path.name not in published:
            shutil.rmtree(path, ignore_errors=True)
    stats["index_segments"] = len(published)
    os.utime(root)
    _bound_cache(root.parent, max_bytes, keep=root)
    return root / INDEX, stats


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


def cache_segment(paths: RunPaths, segment: str, cache_dir: str = "") -> None:
    """Keep a copy of the run's own index segment in this machine's cache (a remote lake's next run then
    need not download it). Call before ``commit``: commit removes the local staging folder."""
    local = paths.staging / segment
    if not paths.lake.remote or not local.is_dir():
        return
    target = Path(cache_dir or default_cache()) / paths.lake.digest / segment
    partial = _partial(target)
    shutil.copytree(local, partial)
    _install(partial, target)


def _upload_merged_segment(lake: Store, segment_dir: Path) -> None:
    """Put a segment merged in this machine's cache on a bucket lake, ``meta.json`` last, then delete the
    segments it replaces (readers skip them from the moment the meta is there). Nothing to do for a local
    lake: compaction merged its own ``_index`` in place."""
    if not lake.remote:
        return
    replaced = json.loads((segment_dir / SEGMENT_META).read_text()).get("replaces", [])
    prefix = f"{INDEX}/{SEGMENTS}/{segment_dir.name}"
    for path in sorted(segment_dir.iterdir(), key=lambda p: (p.name == SEGMENT_META, p.name)):
        lake.upload(path, f"{prefix}/{path.name}")
    for name in replaced:
        lake.delete(f"{INDEX}/{SEGMENTS}/{name}")


def segment_of(paths: RunPaths) -> str:
    """Where the run's index segment is staged, relative to staging (and, once committed, to the lake)."""
    return f"{INDEX}/{SEGMENTS}/{paths.run_id}"


# -- when to merge segments ---------------------------------------------------------------------------

# Per-run index segments make each query touch every segment; merge them once they pile up.
COMPACT_AT_SEGMENTS = 32
# Entries merged at once (~1.2 KB each in memory while merging): keeps compaction under ~0.6 GB.
COMPACT_MAX_ENTRIES = 500_000


def compact_if_needed(lake: Store, index_dir: Path, config: DedupConfig, run_id: str) -> str | None:
    """Merge the smallest index segments when there are many; runs under the lake lock, between runs.
    Returns the merged segment's name, or None when nothing was merged.

    A bucket lake's segments are merged in this machine's cache, then the merged one is put on the store.
    """
    if segment_count(index_dir) <= COMPACT_AT_SEGMENTS:
        return None
    merged = compact(index_dir, config, f"compact-{run_id}", max_entries=COMPACT_MAX_ENTRIES)
    if merged is None:
        return None
    _upload_merged_segment(lake, merged)
    return merged.name

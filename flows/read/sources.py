"""Listing SOURCE: a file, a folder (walked), a glob, or objects in a store, in one order wherever they lie.

Objects in a store are listed once (names, sizes, ETags) by ``flows.storage.Store``, without reading any.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flows.document import Reject
from flows.read.units import Discovery, InputFile, SourceError, fail, portable
from flows.storage import StorageError, Store, StoredObject, is_remote, local_path

_GLOB_CHARS = set("*?[")


def discover(source: str, options: Mapping[str, Any] | None = None) -> Discovery:
    """List the files SOURCE names: a file, a directory (recursive) or a glob pattern.

    SOURCE may be a URI: ``file://`` is a local path; in a store (``s3://``...) a single object, a prefix
    (read recursively) or a glob (``s3://bucket/crawl/2026-12-*/**/*.warc.gz``), listed without reading
    any object. ``options`` are the store's fsspec storage options (credentials, endpoint).
    """
    if is_remote(source):
        return _discover_remote(source, options)
    source = local_path(source)
    path = Path(source)
    if path.is_file():
        root = path.resolve().parent
        return Discovery(str(root), [_input_file(path.resolve(), root)], [])
    if path.is_dir():
        return _walk(path.resolve())
    if _GLOB_CHARS & set(source):
        return _glob(source)
    raise SourceError(
        f"SOURCE {source!r} does not exist: pass a file, a directory or a glob pattern such as 'inbox/**/*.jsonl'."
    )


def _input_file(path: Path, root: Path) -> InputFile:
    return InputFile(portable(str(path)), _uri(path, root), path.stat().st_size)


def _glob(pattern: str) -> Discovery:
    prefix_parts = []
    for part in Path(pattern).parts:
        if _GLOB_CHARS & set(part):
            break
        prefix_parts.append(part)
    root = Path(*prefix_parts).resolve() if prefix_parts else Path.cwd()
    matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))  # noqa: PTH207 - absolute patterns
    files = [_input_file(m.resolve(), root) for m in matches if m.is_file() and _inside(m.resolve(), root)]
    if not files:
        raise SourceError(f"the pattern {pattern!r} matches no file: check it, "
                          "and quote it so the shell does not expand it.")
    return Discovery(str(root), files, [])


def _uri(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, posix, as valid UTF-8: bytes of a non-UTF-8 file name become ``\\xNN``.

    ``os`` hands such names over with lone surrogates, which Parquet (UTF-8) cannot store.
    """
    rel = path.relative_to(root).as_posix()
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")




def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _walk(root: Path) -> Discovery:
    """Walk ``root`` without following symlinks out of it or around a loop."""
    files: list[InputFile] = []
    rejects: list[Reject] = []
    seen_dirs: set[str] = set()

    def on_error(err: OSError) -> None:
        rel = _uri(Path(err.filename), root) if err.filename else "."
        rejects.append(fail(rel, "unreadable", f"cannot list directory: {err.strerror}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs or not _inside(Path(real), root):
            rel = _uri(Path(dirpath), root)
            reason = "symlink_loop" if real in seen_dirs else "outside_source"
            rejects.append(fail(rel, reason, f"directory link leads to {real}, which is skipped"))
            dirnames.clear()
            continue
        seen_dirs.add(real)
        dirnames.sort()
        for name in sorted(filenames):
            file_or_reject = _walk_entry(Path(dirpath) / name, root)
            (files if isinstance(file_or_reject, InputFile) else rejects).append(file_or_reject)  # type: ignore[arg-type]
    return Discovery(str(root), files, rejects)


def _walk_entry(path: Path, root: Path) -> InputFile | Reject:
    rel = _uri(path, root)
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as err:
        return fail(rel, "broken_link", f"cannot resolve the path: {err}")
    if not _inside(real, root):
        return fail(rel, "outside_source", f"links to {real}, outside SOURCE; not read")
    if not real.is_file():
        return fail(rel, "not_a_file", "not a regular file (device, socket or fifo)")
    return InputFile(portable(str(path)), rel, real.stat().st_size)




# -- listing in an object store ----------------------------------------------------------------


def _discover_remote(source: str, options: Mapping[str, Any] | None) -> Discovery:
    """List SOURCE in a store: one listing request per 1,000 objects, sizes and ETags included."""
    prefix, pattern = _split_glob(source)
    store = Store(prefix, options)
    try:
        if pattern:
            root, files, order = store.uri, [_remote_file(store, o) for o in store.objects(pattern)], _glob_order
        elif (single := store.object_at()) is not None:
            root, name = store.uri.rsplit("/", 1)
            files, order = [InputFile(store.url(), name, single.size, etag=single.etag)], _walk_order
        else:
            root, files, order = store.uri, [_remote_file(store, o) for o in store.objects()], _walk_order
    except StorageError as err:
        raise SourceError(f"SOURCE {err}") from err
    if not files:
        raise SourceError(f"SOURCE {source!r} matches no object: check the prefix or pattern "
                          "(quote a pattern so the shell does not expand it).")
    return Discovery(root, sorted(files, key=lambda f: order(f.rel)), [])


def _split_glob(source: str) -> tuple[str, str]:
    """SOURCE as the folders before its first wildcard (the root that ``rel`` is relative to) and the
    pattern after them; the pattern is empty when SOURCE has no wildcard."""
    parts = source.rstrip("/").split("/")
    fixed = next((i for i, part in enumerate(parts) if _GLOB_CHARS & set(part)), len(parts))
    if fixed == len(parts):
        return source, ""
    fixed = max(fixed, 3)  # scheme://bucket: a wildcard in a bucket's name matches no object under it
    return "/".join(parts[:fixed]), "/".join(parts[fixed:])


def _remote_file(store: Store, found: StoredObject) -> InputFile:
    return InputFile(store.url(found.key), found.key, found.size, etag=found.etag)


def _walk_order(rel: str) -> list[tuple[int, str]]:
    """The order ``_walk`` finds files in (a folder's files by name, then its folders by name), so that a
    store's SOURCE gives the same shards, in the same order, as the same tree on disk."""
    *folders, name = rel.split("/")
    return [(1, folder) for folder in folders] + [(0, name)]


def _glob_order(rel: str) -> list[tuple[int, str]]:
    return [(0, part) for part in rel.split("/")]  # as ``sorted(Path(...))`` orders local matches


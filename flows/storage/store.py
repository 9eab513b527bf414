"""A folder of objects, local or in a store, that the lake and SOURCE are read from and written to.

Every read, write, listing and lock of the lake goes through a ``Store``, and so does every object of a
SOURCE in a store; nothing else in siftlake knows whether the lake is on a disk or in a bucket. Object
stores have no rename and no directory: a ``write_bytes`` or ``upload`` is one PUT, atomic per object;
a ``move`` is a server-side copy then a delete; a "folder" is a key prefix.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import fsspec

from flows.storage.conditional import probe, put, supported, version
from flows.storage.errors import StorageError, listing, reading
from flows.storage.filesystems import PROBE_OPTIONS, filesystem, is_remote, local_path, scheme
from flows.storage.objects import RangedFile, StoredObject, is_object, stored_object

# What a name that is not there means when SOURCE is listed.
_MISSING = "does not exist: no object has this name or prefix"
# How long the check before a run waits for a store to answer a listing.
_REACH_S = 5.0
# Stores whose conditional writes this process has checked (``flows.storage.conditional.probe``).
_PROBED: set[str] = set()


class Store:
    """A lake (or any folder of objects) at ``uri``: keys are posix paths relative to it.

    Picklable (the filesystem is made again where it is used), so tasks on other processes or
    machines can take it. Holds the resolved storage options: never log or serialize it as data.
    """

    def __init__(self, uri: str, options: Mapping[str, Any] | None = None) -> None:
        self.remote = is_remote(uri)
        self.options = dict(options or {})
        fs, root = filesystem(uri, self.options)
        self._fs: fsspec.AbstractFileSystem | None = fs
        self.root = root
        self.uri = f"{scheme(uri)}://{root}" if self.remote else root

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.uri, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["uri"], state["options"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Store) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self._fs is None:
            self._fs, _ = filesystem(self.uri, self.options)
        return self._fs

    def path(self, key: str = "") -> str:
        """The filesystem path of ``key`` (what ``fs`` methods take)."""
        return f"{self.root}/{key}".rstrip("/") if key else self.root

    def url(self, key: str = "") -> str:
        """``key`` as a URI (remote) or an absolute path (local): for messages and readers."""
        return f"{self.uri}/{key}".rstrip("/") if key else self.uri

    def local(self, key: str = "") -> Path:
        """The local path of ``key``; only for a local store."""
        assert not self.remote, f"{self.uri} is not a local folder"
        return Path(self.path(key))

    @property
    def digest(self) -> str:
        """A short name for this store, for its local cache and scratch folders."""
        return hashlib.sha256(self.uri.encode()).hexdigest()[:16]

    # -- reading -----------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def read_bytes(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self.path(key)))

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def files(self, prefix: str = "") -> list[str]:
        """Keys of every object under ``prefix`` (recursive), sorted; none when it does not exist."""
        base = self.path(prefix)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        root = self.root + "/"
        return sorted(str(p)[len(root):] for p in found if str(p).startswith(root))

    def sizes(self, prefix: str = "") -> dict[str, int]:
        """Key and size of every object under ``prefix`` (recursive), from one listing; none when it does not
        exist."""
        try:
            found = self.fs.find(self.path(prefix), detail=True)
        except FileNotFoundError:
            return {}
        root = self.root + "/"
        return {str(p)[len(root):]: int(info["size"]) for p, info in found.items()
                if str(p).startswith(root) and info.get("type") == "file"}

    def children(self, prefix: str) -> list[str]:
        """Names directly under ``prefix`` (files and "folders"), sorted."""
        try:
            entries = self.fs.ls(self.path(prefix), detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in entries)

    def info(self, key: str) -> dict[str, Any]:
        return dict(self.fs.info(self.path(key)))

    def download(self, key: str, target: Path) -> None:
        """Copy object ``key`` to the local file ``target``, which appears whole or not at all."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.download")
        if self.remote:
            self.fs.get_file(self.path(key), str(partial))
        else:
            shutil.copyfile(self.path(key), partial)
        os.replace(partial, target)

    # -- serving SOURCE: objects listed with sizes and ETags, fetched whole or streamed in ranges --

    def object_at(self, key: str = "") -> StoredObject | None:
        """The object at ``key`` as listed (size, ETag), or None when ``key`` is a prefix ("folder")."""
        with listing(self.url(key), _MISSING):
            info = self.fs.info(self.path(key))
        return stored_object(key, info) if info.get("type") == "file" else None

    def objects(self, pattern: str = "") -> list[StoredObject]:
        """Every object under the root (recursive), or those whose keys match the glob ``pattern``, with
        their sizes and ETags: one listing request per 1,000 objects, none read; in no set order."""
        with listing(self.url(pattern), _MISSING):
            found = self.fs.glob(self.path(pattern), detail=True) if pattern else self.fs.find(self.root, detail=True)
        start = len(self.root) + 1
        return [stored_object(name[start:], info) for name, info in found.items() if is_object(name, info, self.root)]

    def fetch(self, key: str) -> bytes:
        """The whole object at ``key`` in one GET. A missing object raises ``FileNotFoundError``, any
        other failure of the store a ``StorageError``."""
        # s3fs asks for the size (a HEAD) before each GET unless told to fetch in one request: one round
        # trip instead of two (moto: 20 -> 8 ms a page, and 6.6 -> 3.6 ms of client CPU).
        single = {"max_concurrency": 1} if scheme(self.uri) in ("s3", "s3a") else {}
        with reading(self.url(key)):
            return bytes(self.fs.cat_file(self.path(key), **single))

    def open_ranged(self, key: str, block: int) -> IO[bytes]:
        """The object at ``key`` streamed in ranges of ``block`` bytes, seekable; errors as ``fetch``'s."""
        return io.BufferedReader(RangedFile(self.url(key), self.fs, self.path(key), block), buffer_size=1 << 16)

    # -- writing: each call is atomic per object ---------------------------------------------

    def write_bytes(self, key: str, data: bytes) -> None:
        if self.remote:
            self.fs.pipe_file(self.path(key), data)
            return
        target = self.local(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.tmp")
        partial.write_bytes(data)
        os.replace(partial, target)

    def upload(self, source: Path, key: str) -> None:
        """Put the local file ``source`` at ``key`` (one PUT; local: copy, then rename into place)."""
        if self.remote:
            self.fs.put_file(str(source), self.path(key))
            return
        target = self.local(key)
        if target.resolve() == source.resolve():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, partial)
        os.replace(partial, target)

    def move(self, source: str, target: str) -> None:
        """Move object ``source`` to ``target``: a rename locally, a server-side copy then a delete remotely.

        A reader sees ``target`` whole or not at all either way (a copy is atomic per object).
        """
        if not self.remote:
            destination = self.local(target)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.local(source), destination)
            return
        self.fs.copy(self.path(source), self.path(target))
        self.fs.rm_file(self.path(source))

    def delete(self, key: str) -> None:
        """Remove ``key`` and everything under it; nothing happens when it is not there."""
        if not self.remote:
            path = self.local(key)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            return
        for found in self.files(key):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path(found))
        with contextlib.suppress(FileNotFoundError):
            if self.fs.isfile(self.path(key)):
                self.fs.rm_file(self.path(key))

    # -- conditional writes (the lock of a lake on an object store) ---------------------------

    def create_exclusive(self, key: str, data: bytes) -> str | None:
        """Create ``key`` only if no object has that name; its version (ETag, generation), or None if it exists.

        The first call on a store checks that it honours conditional writes (``flows.storage.conditional.probe``).
        """
        kind = scheme(self.uri)
        if not supported(kind):
            raise StorageError(f"{self.uri}: the cross-machine lock needs conditional writes, which siftlake "
                               "implements for s3://, gs:// and az://; use a lake on one of those or a local one")
        checked = f"{self.uri} {sorted(self.options.items())!r}"
        if checked not in _PROBED:
            probe(kind, self.fs, self.root, self.uri)
            _PROBED.add(checked)
        return put(kind, self.fs, self.path(key), data, None)

    def replace_if(self, key: str, data: bytes, held: str) -> str | None:
        """Overwrite ``key`` only while its version is ``held``; the new version, or None if it changed."""
        return put(scheme(self.uri), self.fs, self.path(key), data, held)

    def read_with_etag(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and the version (ETag, generation) it had just before they were read, or None
        when there is none.

        A write in between gives bytes newer than the version: a ``replace_if`` with it then fails, which is
        the safe side.
        """
        try:
            tag = version(scheme(self.uri), dict(self.fs.info(self.path(key), refresh=True)))
            return self.read_bytes(key), tag
        except FileNotFoundError:
            return None

    def delete_if(self, key: str, etag: str) -> None:
        """Remove ``key`` if it still is the object with version ``etag`` (ours); leave another holder's alone."""
        current = self.read_with_etag(key)
        if current is not None and current[1] == etag:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path(key))

    # -- checks before a run -----------------------------------------------------------------

    def check_reachable(self) -> None:
        """Fail fast, with what to check, when the store cannot be listed (missing bucket, credentials, endpoint)."""
        if not self.remote:
            return
        bucket = self.root.split("/", 1)[0]
        noun = "container" if scheme(self.uri) in ("az", "abfs", "abfss") else "bucket"
        probe, _ = filesystem(self.uri, {**self.options, **PROBE_OPTIONS.get(scheme(self.uri), {})})
        with listing(self.uri, f"the {noun} {bucket!r} does not exist"):
            _within(_REACH_S, lambda: probe.ls(bucket, detail=False))


def _within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()``'s answer, or a ``TimeoutError`` after ``seconds``: gcsfs and adlfs retry an unreachable
    endpoint for several seconds, as they retry a transient error (the call goes on in a thread of its own)."""
    answer: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            answer.append(call())
        except BaseException as err:  # handed to the caller as it is
            failure.append(err)

    thread = threading.Thread(target=run, name="siftlake-reach", daemon=True)
    thread.start()
    thread.join(seconds)
    if failure:
        raise failure[0]
    if not answer:
        raise TimeoutError(f"no answer in {seconds:g} s")
    return answer[0]


def check_source(source: str, options: Mapping[str, Any] | None = None) -> None:
    """Fail fast when SOURCE cannot be there: a local path that does not exist (and is no glob), or an
    object store that cannot be reached. What a glob or a prefix holds is for discovery to say."""
    if is_remote(source):
        Store(source, options).check_reachable()
        return
    path = local_path(source)
    if not set("*?[") & set(path) and not Path(path).exists():
        raise StorageError(f"SOURCE {source!r} does not exist: pass a file, a directory or a glob pattern such as "
                           "'inbox/**/*.jsonl', as a local path or a URI (s3://bucket/prefix).")

"""Where the lake and the inputs live: a local folder or an object store, through one library (fsspec).

Every read, write, listing and lock of the lake goes through a ``Store``; nothing else in siftlake
knows whether the lake is on a disk or in a bucket. Local paths and ``file://`` URIs are local
folders; ``s3://``, ``gs://``, ``az://`` / ``abfs://`` (and fsspec's ``memory://``) are object stores.

Why fsspec: pandas, duckdb (``register_filesystem``), polars, pyarrow (``PyFileSystem``) and Dask take
its filesystems, so one set of ``storage_options`` serves the flow and the lake's readers, and
s3fs / gcsfs / adlfs take credentials the standard way (the AWS chain and ``AWS_ENDPOINT_URL``,
``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``). Object stores have no rename and no
directory: a ``write_bytes`` or ``upload`` is one PUT, atomic per object; a ``move`` is a server-side
copy then a delete; a "folder" is a key prefix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

REMOTE_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory")
# Options whose values are secrets: never logged, never written to a manifest.
SECRET_OPTION_WORDS = ("key", "secret", "token", "password", "credential", "sas", "connection_string", "signature")
REDACTED = "***"
ENV_PREFIX = "env:"
"""An option value ``env:NAME`` is read from the environment variable NAME when the run starts, so a
deployment's parameters hold the variable's name, not the secret."""


class StorageError(RuntimeError):
    """The lake or SOURCE cannot be reached or used; the message names the URI and what to check."""


def scheme(uri: str) -> str:
    """The URI's scheme (``s3``, ``gs``...), or ``""`` for a local path or ``file://``."""
    head, sep, _ = uri.partition("://")
    return head.lower() if sep and head.lower() != "file" else ""


def is_remote(uri: str) -> bool:
    return scheme(uri) in REMOTE_SCHEMES


def local_path(uri: str) -> str:
    """A local path or ``file://`` URI as a plain path."""
    return uri[len("file://"):] if uri.lower().startswith("file://") else uri


def resolve_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Storage options with ``env:NAME`` values read from the environment (see ``ENV_PREFIX``)."""
    resolved: dict[str, Any] = {}
    for name, value in options.items():
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            variable = value[len(ENV_PREFIX):]
            if variable not in os.environ:
                raise StorageError(f"storage option {name!r} names the environment variable {variable!r}, "
                                   "which is not set: set it where the run executes (e.g. the work pool's env)")
            value = os.environ[variable]
        elif isinstance(value, Mapping):
            value = resolve_options(value)
        resolved[name] = value
    return resolved


def redact(options: Any) -> Any:
    """``options`` with every secret-looking value replaced by ``***`` (for manifests and logs)."""
    if isinstance(options, Mapping):
        return {name: (REDACTED if _is_secret(str(name), value) else redact(value)) for name, value in options.items()}
    if isinstance(options, list):
        return [redact(item) for item in options]
    return options


def _is_secret(name: str, value: Any) -> bool:
    lowered = name.lower()
    plain = isinstance(value, str) and not value.startswith(ENV_PREFIX)
    return plain and any(word in lowered for word in SECRET_OPTION_WORDS)


# botocore retries throttling, 5xx and dropped connections with backoff (5 attempts, adaptive); s3fs
# retries a few errors botocore does not (a body cut off mid-read) on top: each of its retries runs
# botocore's again, so it stays small. A store that is gone fails a call after about a minute.
_S3FS_RETRIES = 2


def filesystem(uri: str, options: Mapping[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``uri`` and the path inside it."""
    if not is_remote(uri):
        return LocalFileSystem(), str(Path(local_path(uri)).absolute())
    kwargs = resolve_options(options or {})
    s3fs_retries = kwargs.pop("retries", _S3FS_RETRIES)
    if scheme(uri) in ("s3", "s3a"):
        # Retries with backoff for throttling and 5xx come from botocore; bound connection waits so an
        # unreachable endpoint fails the run instead of hanging it.
        config = dict(kwargs.pop("config_kwargs", None) or {})
        config.setdefault("connect_timeout", 10)
        config.setdefault("read_timeout", 60)
        config.setdefault("retries", {"max_attempts": 5, "mode": "adaptive"})
        kwargs["config_kwargs"] = config
        # fsspec reuses a filesystem made with the same options: name the endpoint the environment gives,
        # so a process whose AWS_ENDPOINT_URL changes does not keep talking to the old one.
        if os.environ.get("AWS_ENDPOINT_URL") and "endpoint_url" not in kwargs:
            kwargs["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
        # Other runs and workers change the lake: list it afresh every time.
        kwargs.setdefault("use_listings_cache", False)
    try:
        fs, path = fsspec.core.url_to_fs(uri, **kwargs)
    except ImportError as err:
        raise StorageError(f"{uri}: the filesystem library for {scheme(uri)}:// is not installed ({err}); "
                           "install siftlake with its 'cloud' extra: pip install 'siftlake[cloud]'") from err
    if scheme(uri) in ("s3", "s3a"):
        fs.retries = s3fs_retries
    return fs, str(path).rstrip("/")


# The reachability check asks once, briefly: a wrong endpoint must fail the run in seconds, not after
# the minutes of retries that a transient error deserves mid-run.
_PROBE_OPTIONS: dict[str, dict[str, Any]] = {
    "s3": {"skip_instance_cache": True, "retries": 1,
           "config_kwargs": {"connect_timeout": 3, "read_timeout": 10, "retries": {"max_attempts": 1}}},
}
_PROBE_OPTIONS["s3a"] = _PROBE_OPTIONS["s3"]


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
        """Create ``key`` only if no object has that name (``If-None-Match: *``); its ETag, or None if it exists."""
        if scheme(self.uri) not in ("s3", "s3a"):
            raise StorageError(f"{self.uri}: the cross-machine lock needs conditional writes, which siftlake "
                               "implements for s3:// (AWS S3 and S3-compatible servers); use an s3:// lake "
                               "or a local one")
        bucket, path = self._bucket_key(key)
        try:
            answer = self.fs.call_s3("put_object", Bucket=bucket, Key=path, Body=data, IfNoneMatch="*")
        except Exception as err:
            if _precondition_failed(err):
                return None
            raise
        return str(answer.get("ETag", ""))

    def replace_if(self, key: str, data: bytes, etag: str) -> str | None:
        """Overwrite ``key`` only while its ETag is ``etag`` (``If-Match``); the new ETag, or None if it changed."""
        bucket, path = self._bucket_key(key)
        try:
            answer = self.fs.call_s3("put_object", Bucket=bucket, Key=path, Body=data, IfMatch=etag)
        except Exception as err:
            if _precondition_failed(err) or isinstance(err, FileNotFoundError):
                return None
            raise
        return str(answer.get("ETag", ""))

    def read_with_etag(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and the ETag it had just before they were read, or None when there is none.

        A write in between gives bytes newer than the ETag: a ``replace_if`` with that ETag then fails,
        which is the safe side.
        """
        try:
            etag = str(self.fs.info(self.path(key), refresh=True).get("ETag", ""))
            return self.read_bytes(key), etag
        except FileNotFoundError:
            return None

    def delete_if(self, key: str, etag: str) -> None:
        """Remove ``key`` if it still is the object with ``etag`` (ours); leave another holder's alone."""
        current = self.read_with_etag(key)
        if current is not None and current[1] == etag:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path(key))

    def _bucket_key(self, key: str) -> tuple[str, str]:
        bucket, _, path = self.path(key).partition("/")
        return bucket, path

    # -- checks before a run -----------------------------------------------------------------

    def check_reachable(self) -> None:
        """Fail fast, with what to check, when the store cannot be listed (missing bucket, credentials, endpoint)."""
        if not self.remote:
            return
        bucket = self.root.split("/", 1)[0]
        probe, _ = filesystem(self.uri, {**self.options, **_PROBE_OPTIONS.get(scheme(self.uri), {})})
        try:
            probe.ls(bucket, detail=False)
        except Exception as err:
            raise StorageError(unreachable_message(self.uri, err, f"the bucket {bucket!r} does not exist")) from err


def unreachable_message(uri: str, err: BaseException, missing: str) -> str:
    """Why ``uri`` could not be listed or read, and what to check; ``missing`` says what a not-found means."""
    if isinstance(err, FileNotFoundError):
        return f"{uri}: {missing}; check the name and the endpoint (AWS_ENDPOINT_URL or storage options)"
    if isinstance(err, PermissionError):
        return (f"{uri}: cannot be listed, access denied ({err}); check the credentials (AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, storage options, or the work pool's environment)")
    # The clients' errors for a bad endpoint or network vary by library.
    return (f"{uri}: cannot be listed, cannot reach the object store ({type(err).__name__}: {err}); check the "
            "endpoint (AWS_ENDPOINT_URL), the network and the credentials")


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


def _precondition_failed(err: Exception) -> bool:
    if isinstance(err, FileExistsError):  # s3fs's name for 412 Precondition Failed
        return True
    text = f"{type(err).__name__} {err} {err.__cause__!r}"
    return any(word in text for word in ("PreconditionFailed", "pre-conditions", "ConditionalRequestConflict"))

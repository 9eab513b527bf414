"""Which filesystem a URI names, with what options: schemes, ``env:`` options, secrets redacted, fsspec made.

Local paths and ``file://`` URIs are local folders; ``s3://``, ``gs://``, ``az://`` / ``abfs://`` (and
fsspec's ``memory://``) are object stores.

Why fsspec: pandas, duckdb (``register_filesystem``), polars, pyarrow (``PyFileSystem``) and Dask take
its filesystems, so one set of ``storage_options`` serves the flow and the lake's readers, and
s3fs / gcsfs / adlfs take credentials the standard way (the AWS chain and ``AWS_ENDPOINT_URL``,
``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from flows.storage.errors import StorageError

REMOTE_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory")
# Options whose values are secrets: never logged, never written to a manifest.
SECRET_OPTION_WORDS = ("key", "secret", "token", "password", "credential", "sas", "connection_string", "signature")
REDACTED = "***"
ENV_PREFIX = "env:"
"""An option value ``env:NAME`` is read from the environment variable NAME when the run starts, so a
deployment's parameters hold the variable's name, not the secret."""


def scheme(uri: str) -> str:
    """The URI's scheme (``s3``, ``gs``...), or ``""`` for a local path or ``file://``."""
    head, sep, _ = uri.partition("://")
    return head.lower() if sep and head.lower() != "file" else ""


def is_remote(uri: str) -> bool:
    return scheme(uri) in REMOTE_SCHEMES


def local_path(uri: str) -> str:
    """A local path or ``file://`` URI as a plain path."""
    return uri[len("file://"):] if uri.lower().startswith("file://") else uri


def split_object_uri(uri: str) -> tuple[str, str]:
    """An object's URI as its bucket (or top folder), a store's URI, and its key in that store."""
    head, _, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    return f"{head}://{bucket}", key


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


# botocore retries throttling, 5xx and dropped connections with backoff (3 attempts, adaptive); s3fs
# retries a few errors botocore does not (a body cut off mid-read, a dropped connection) on top: each of its
# retries runs botocore's again, so both stay small. With 5 attempts a write to a store that had gone away took
# 25-36 s to fail (moto behind a proxy that drops every connection), a run 109 s; with 3, 4-8 s and 29 s.
_S3FS_RETRIES = 2
_KINDS = {"s3a": "s3", "gcs": "gs", "abfs": "az", "abfss": "az"}


def filesystem(uri: str, options: Mapping[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``uri`` and the path inside it.

    Each store's client retries a failed request with backoff, a few times: enough to ride out a few 503s or
    dropped connections, few enough that a store that has gone away fails the run in well under 2 minutes (the
    flow's I/O tasks try each shard 3 times on top). The options given win over these defaults.
    """
    if not is_remote(uri):
        return LocalFileSystem(), str(Path(local_path(uri)).absolute())
    kind = _KINDS.get(scheme(uri), scheme(uri))
    kwargs = resolve_options(options or {})
    if kind == "s3":
        # Retries with backoff for throttling and 5xx come from botocore; bound connection waits so an
        # unreachable endpoint fails the run instead of hanging it.
        config = dict(kwargs.pop("config_kwargs", None) or {})
        config.setdefault("connect_timeout", 10)
        config.setdefault("read_timeout", 60)
        config.setdefault("retries", {"max_attempts": 3, "mode": "adaptive"})
        kwargs["config_kwargs"] = config
    kwargs.update(_from_environment(scheme(uri), kwargs))
    if kind != "memory":
        # Other runs and workers change the lake: list it afresh every time.
        kwargs.setdefault("use_listings_cache", False)
    try:
        fs, path = _made(kind, uri, kwargs)
    except ImportError as err:
        raise StorageError(f"{uri}: the filesystem library for {scheme(uri)}:// is not installed ({err}); "
                           "install siftlake with its 'cloud' extra: pip install 'siftlake[cloud]'") from err
    return fs, str(path).rstrip("/")


def _made(kind: str, uri: str, kwargs: dict[str, Any]) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem of ``uri`` made with ``kwargs``: on Cloud Storage and Azure Blob, a subclass of gcsfs's or
    adlfs's whose retries are bounded (``flows.storage.gcs``, ``flows.storage.azure_blob``)."""
    if kind not in ("gs", "az"):
        retries = kwargs.pop("retries", _S3FS_RETRIES)
        fs, path = fsspec.core.url_to_fs(uri, **kwargs)
        if kind == "s3":
            fs.retries = retries
        return fs, path
    if kind == "gs":
        from flows.storage.gcs import filesystem_class

        cls: Any = filesystem_class()
    else:
        from flows.storage.azure_blob import BoundedAzureBlobFileSystem as cls
    # What fsspec.core.url_to_fs does for one protocol: options the URL holds (an account, a version), its path.
    return cls(**{**cls._get_kwargs_from_urls(uri), **kwargs}), cls._strip_protocol(uri)


def _from_environment(kind: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The endpoint (and, for an emulator, the credentials) the environment gives, as explicit options.

    fsspec reuses a filesystem made with the same options: naming them makes a process whose environment
    changes (another endpoint, another account) talk to the new one, not to a cached client of the old.
    """
    found: dict[str, Any] = {}
    if kind in ("s3", "s3a") and os.environ.get("AWS_ENDPOINT_URL") and "endpoint_url" not in kwargs:
        found["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if kind in ("gs", "gcs") and emulator not in ("", "default"):
        # gcsfs asks a gRPC control plane for each bucket's layout unless told not to: an emulator has none,
        # and every call would wait a minute for it (read when gcsfs is imported).
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        found = {"endpoint_url": emulator, "token": "anon"} if "endpoint_url" not in kwargs else {}
    if kind in ("az", "abfs", "abfss") and os.environ.get("AZURE_STORAGE_CONNECTION_STRING") and not (
            {"connection_string", "account_name"} & set(kwargs)):
        found["connection_string"] = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    return found


# The reachability check asks once, briefly: a wrong endpoint must fail the run in seconds, not after
# the minutes of retries that a transient error deserves mid-run.
PROBE_OPTIONS: dict[str, dict[str, Any]] = {
    "s3": {"skip_instance_cache": True, "retries": 1,
           "config_kwargs": {"connect_timeout": 3, "read_timeout": 10, "retries": {"max_attempts": 1}}},
}
PROBE_OPTIONS["s3a"] = PROBE_OPTIONS["s3"]

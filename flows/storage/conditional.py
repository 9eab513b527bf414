"""Conditional writes, each store through its own client: create only if absent, replace only the version held.

What the lease lock of a lake on an object store is built on (``flows.lake.locks``). A version is the
store's own tag of one write of an object: the ETag on S3 and Azure Blob, the generation on Cloud Storage.

- ``s3://``: ``PutObject`` with ``IfNoneMatch="*"`` / ``IfMatch=<etag>`` through s3fs's botocore client.
- ``gs://``: the JSON API's multipart upload with ``ifGenerationMatch=0`` / ``ifGenerationMatch=<generation>``,
  sent by gcsfs's own authenticated ``call`` (gcsfs's ``pipe_file(mode="create")`` does the first, nothing in
  gcsfs does the second).
- ``az://``: azure-storage-blob's ``upload_blob`` with ``overwrite=False`` (``If-None-Match: *``) /
  ``etag=<etag>, match_condition=IfNotModified`` (``If-Match``), on adlfs's own ``BlobServiceClient``.

A store that takes the requests but ignores their conditions (an emulator, an S3-compatible server) would
give a lock that does not exclude: ``probe`` finds out once per lake and process, and refuses it.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import fsspec

from flows.storage.errors import StorageError, precondition_failed

_MULTIPART = "==siftlake=="


def _s3_put(fs: fsspec.AbstractFileSystem, path: str, data: bytes, condition: dict[str, str]) -> str | None:
    bucket, _, key = path.partition("/")
    try:
        answer = fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
    except Exception as err:
        if precondition_failed(err) or (isinstance(err, FileNotFoundError) and "IfMatch" in condition):
            return None
        raise
    return str(answer.get("ETag", ""))


def _gcs_put(fs: fsspec.AbstractFileSystem, path: str, data: bytes, generation: str) -> str | None:
    # A multipart upload, as gcsfs's own small writes: real Cloud Storage honours ifGenerationMatch on every
    # upload type, fake-gcs-server on multipart uploads only.
    bucket, _, key = path.partition("/")
    head = (f"--{_MULTIPART}\nContent-Type: application/json; charset=UTF-8\n\n{json.dumps({'name': key})}\n"
            f"--{_MULTIPART}\nContent-Type: application/octet-stream\n\n").encode()
    body = head + data + f"\n--{_MULTIPART}--".encode()
    try:
        answer = fs.call("POST", f"{fs._location}/upload/storage/v1/b/{bucket}/o", uploadType="multipart",
                         headers={"Content-Type": f'multipart/related; boundary="{_MULTIPART}"'}, data=body,
                         ifGenerationMatch=generation, json_out=True)
    except FileExistsError:  # gcsfs's name for 412 Precondition Failed
        return None
    except FileNotFoundError:  # the object is gone (a replace), or the bucket (a create: the caller's to hear)
        if generation == "0":
            raise
        return None
    return str(answer["generation"])


def _azure_put(fs: fsspec.AbstractFileSystem, path: str, data: bytes, etag: str | None) -> str | None:
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
    from fsspec.asyn import sync

    container, _, blob = path.partition("/")
    condition: dict[str, Any] = ({"overwrite": False} if etag is None else
                                 {"overwrite": True, "etag": etag, "match_condition": MatchConditions.IfNotModified})

    async def upload() -> dict[str, Any]:
        async with fs.service_client.get_blob_client(container, blob) as client:
            return dict(await client.upload_blob(data, **condition))

    try:
        answer = sync(fs.loop, upload)
    except (ResourceExistsError, ResourceModifiedError):
        return None
    except ResourceNotFoundError:  # the blob is gone (a replace), or the container (a create: the caller's)
        if etag is None:
            raise
        return None
    return str(answer["etag"])


Put = Callable[[fsspec.AbstractFileSystem, str, bytes, "str | None"], "str | None"]
# For each scheme: how to put an object on a condition (version None: only if absent), and the listing field
# that holds an object's version.
_PUTS: dict[str, tuple[Put, str]] = {
    "s3": (lambda fs, p, d, v: _s3_put(fs, p, d, {"IfNoneMatch": "*"} if v is None else {"IfMatch": v}), "ETag"),
    "gs": (lambda fs, p, d, v: _gcs_put(fs, p, d, "0" if v is None else v), "generation"),
    "az": (_azure_put, "etag"),
}
for _alias, _same in (("s3a", "s3"), ("gcs", "gs"), ("abfs", "az"), ("abfss", "az")):
    _PUTS[_alias] = _PUTS[_same]


def supported(kind: str) -> bool:
    return kind in _PUTS


def put(kind: str, fs: fsspec.AbstractFileSystem, path: str, data: bytes, version: str | None) -> str | None:
    """Write ``data`` at ``path`` only if no object is there (``version`` None) or only while its version is
    ``version``; the new version, or None when the condition did not hold."""
    return _PUTS[kind][0](fs, path, data, version)


def version(kind: str, info: dict[str, Any]) -> str:
    """The version of an object as ``fs.info`` gives it."""
    return str(info.get(_PUTS[kind][1], ""))


def probe(kind: str, fs: fsspec.AbstractFileSystem, folder: str, uri: str) -> None:
    """Raise ``StorageError`` unless the store refuses a second create-only write, and a write on a stale
    version, of one probe object under ``folder`` (deleted afterwards)."""
    path = f"{folder}/_lock.probe-{uuid.uuid4().hex}"
    try:
        first = put(kind, fs, path, b"1", None)
        again = put(kind, fs, path, b"2", None)
        newer = put(kind, fs, path, b"3", first) if first else None
        stale = put(kind, fs, path, b"4", first) if first else None
    finally:
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(path)
    faults = [fault for fault, happened in (
        ("a create-only write of a new object was refused", first is None),
        ("a second create-only write replaced the object", again is not None),
        ("a write on the current version was refused", first is not None and newer is None),
        ("a write on a stale version was accepted", stale is not None)) if happened]
    if faults:
        raise StorageError(
            f"{uri}: this store does not honour conditional writes ({'; '.join(faults)}), so the lake's lock "
            "could not keep two runs apart: siftlake does not write a lake here. Use a store that honours them "
            "(AWS S3, Cloud Storage, Azure Blob) or a local lake")

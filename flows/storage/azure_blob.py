"""adlfs's filesystem on a Blob client whose retries are bounded, so that an Azure Blob endpoint that has gone away
fails a call in seconds, not a minute and a half (imported only for ``az://``: adlfs is an optional extra).

adlfs makes its ``BlobServiceClient`` with azure-storage-blob's defaults and passes no client options on. Their
``ExponentialRetry`` tries a request 4 times, 18, 24 and 42 s apart (± 3 s; ``initial_backoff`` + 3 ** retry): a
write to an endpoint that had gone away took 83 s to fail (Azurite behind a proxy that drops every connection),
and the flow's I/O tasks try a shard 3 times. This subclass makes the client again, on the URL and credential
adlfs gave its own, with the client options azure-storage-blob documents (``retry_total``, ``initial_backoff``,
``increment_base``, ``random_jitter_range``, ``retry_connect``, ``retry_read``, ``retry_status``,
``connection_timeout``, ``read_timeout``), taken as storage options.
"""

from __future__ import annotations

from typing import Any

from adlfs import AzureBlobFileSystem
from adlfs import __version__ as adlfs_version
from azure.storage.blob.aio import BlobServiceClient

# 3 tries, 3 and 5 s apart (± 1 s: 1 + 2 ** retry): a call to a store that is gone fails in ~8 s, a run in
# ~35 s, and a few 503s or dropped connections in a row are still ridden out. 10 s to connect, as botocore's on S3
# (20 s by default).
CLIENT_DEFAULTS: dict[str, Any] = {"retry_total": 2, "initial_backoff": 1, "increment_base": 2,
                                   "random_jitter_range": 1, "connection_timeout": 10}
_CLIENT_ONLY = ("retry_total", "retry_connect", "retry_read", "retry_status", "initial_backoff", "increment_base",
                "random_jitter_range")
_SHARED = ("connection_timeout", "read_timeout")  # adlfs's own too, for its uploads and downloads


class BoundedAzureBlobFileSystem(AzureBlobFileSystem):  # type: ignore[misc]
    """``AzureBlobFileSystem`` whose Blob client takes the client options above (``CLIENT_DEFAULTS`` where unset)."""

    service_client: BlobServiceClient

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.client_options = {**CLIENT_DEFAULTS, **{name: kwargs.pop(name) for name in _CLIENT_ONLY if name in kwargs},
                               **{name: kwargs[name] for name in _SHARED if kwargs.get(name) is not None}}
        super().__init__(*args, **kwargs)

    def do_connect(self) -> None:
        super().do_connect()
        made = self.service_client  # never used: it has opened no connection
        client = BlobServiceClient(made.url, credential=made.credential, user_agent=f"adlfs/{adlfs_version}",
                                   secondary_hostname=made.secondary_hostname or None, **self.client_options)
        client.location_mode = made.location_mode
        self.service_client = client

"""gcsfs's filesystem with its retries and waits bounded, so that a Cloud Storage endpoint that has gone away
fails a call in seconds, not a minute (imported only for ``gs://``: gcsfs is an optional extra).

gcsfs tries each request 6 times, 1, 2, 4, 8 and 16 s apart (plus up to 1 s each), on a 5xx, 408, 429 or a
dropped connection: a write to an endpoint that had gone away took 34 s to fail (fake-gcs-server behind a proxy
that drops every connection), and the flow's I/O tasks try a shard 3 times, so a run took 120 s to fail. The
count is fixed when gcsfs defines its class (``GCSFileSystem.retries``, read once by its ``retry_request``
decorator): this subclass runs the same loop with a count of its own, the ``retries`` storage option. gcsfs also
sets no timeout on its requests: an endpoint that takes a connection and never answers would hang a run.
"""

from __future__ import annotations

import functools
from typing import Any

import aiohttp
import gcsfs
from gcsfs.core import GCSFileSystem
from gcsfs.retry import retry_request

# 4 tries, 1, 2 and 4 s apart (plus up to 1 s each): a call to a store that is gone fails in ~9 s, a run in ~40 s,
# and a few 503s or dropped connections in a row are still ridden out.
TRIES = 4
# Waits on a connection, as botocore's on S3 (connect_timeout, read_timeout).
TIMEOUT = aiohttp.ClientTimeout(sock_connect=10, sock_read=60)


@functools.cache
def _retrying(name: str, tries: int) -> Any:
    """gcsfs's method ``name`` in gcsfs's own retry loop, with ``tries`` tries instead of the class's count."""
    return retry_request(retries=tries)(getattr(GCSFileSystem, name).__wrapped__)


class BoundedGCSFileSystem(GCSFileSystem):  # type: ignore[misc]
    """``GCSFileSystem`` whose requests are tried ``retries`` times (default ``TRIES``), within ``TIMEOUT``."""

    def __init__(self, *args: Any, retries: int = TRIES, requests_timeout: Any = TIMEOUT, **kwargs: Any) -> None:
        super().__init__(*args, requests_timeout=requests_timeout, **kwargs)
        self.retries = retries

    async def _request(self, *args: Any, **kwargs: Any) -> Any:
        return await _retrying("_request", self.retries)(self, *args, **kwargs)

    async def _get_file_request(self, *args: Any, **kwargs: Any) -> Any:
        return await _retrying("_get_file_request", self.retries)(self, *args, **kwargs)

    async def _get_file_concurrent(self, *args: Any, **kwargs: Any) -> Any:
        return await _retrying("_get_file_concurrent", self.retries)(self, *args, **kwargs)


if gcsfs.GCSFileSystem is not GCSFileSystem:  # gcsfs chose its ExtendedGcsFileSystem (bucket layouts over gRPC)

    class BoundedExtendedGCSFileSystem(gcsfs.GCSFileSystem, BoundedGCSFileSystem):  # type: ignore[misc, name-defined]
        """gcsfs's extended filesystem on the bounded requests (its overrides call them through ``super()``)."""


def filesystem_class() -> type[GCSFileSystem]:
    """The bounded class of the filesystem gcsfs chose (``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT`` when it was imported)."""
    if gcsfs.GCSFileSystem is GCSFileSystem:
        return BoundedGCSFileSystem
    return BoundedExtendedGCSFileSystem

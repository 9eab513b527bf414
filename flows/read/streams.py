"""Byte streams of the files of a shard: local files, objects fetched ahead or read in ranges, gzip limits.

Every object in a store is opened through ``flows.storage.Store``: a failure of the store itself
(network, credentials) raises ``StorageError`` and fails the shard, so that a retry or the next run
reads the file again instead of filing it as a bad input.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

from flows.read.units import InputFile, ReadConfig, UnitError, os_path
from flows.storage import Store, is_remote, split_object_uri

# An object up to this size is fetched whole in one GET (no HEAD first: most pages and small files),
# ahead of the reading and several at once; a larger one is streamed in ranges of this size, one
# buffer held at a time (moto on 127.0.0.1: 100 MB in 2.0 s with 8 MiB ranges, 1.0 s with 32 MiB).
_REMOTE_BLOCK = 16 << 20
# Whole objects fetched ahead of the reading: at most this many bytes and objects in flight, on this
# many threads. A GET costs one round trip (10-50 ms on S3; 20 ms on moto), far more than reading a
# page takes: fetched one after the other, 2,000 pages would wait 40-100 s.
_PREFETCH_BYTES = 32 << 20
_PREFETCH_OBJECTS = 64
_FETCH_THREADS = 16


def _fetched_whole(item: InputFile) -> bool:
    """A small object in a store, whole (a piece's ``size`` is the piece's: it is streamed in ranges)."""
    return item.size <= _REMOTE_BLOCK and item.start == 0 and item.stop is None and is_remote(item.path)


def with_prefetch(files: list[InputFile],
                  options: Mapping[str, Any] | None) -> Iterator[tuple[InputFile, Future[bytes] | None]]:
    """Each file, with the fetch of its bytes when it is a small object in a store, started ahead."""
    if not any(_fetched_whole(item) for item in files):
        yield from ((item, None) for item in files)  # local files: nothing to wait for
        return
    pool = ThreadPoolExecutor(_FETCH_THREADS, thread_name_prefix="siftlake-fetch")
    stores: dict[str, Store] = {}  # by bucket: making one costs ~0.7 ms, a GET ~3.5 ms of CPU
    fetches: dict[int, Future[bytes]] = {}
    ahead = in_flight = 0
    try:
        for index, item in enumerate(files):
            while ahead < len(files) and (ahead <= index or (
                    in_flight < _PREFETCH_BYTES and len(fetches) < _PREFETCH_OBJECTS)):
                if _fetched_whole(files[ahead]):
                    store, key = _object(files[ahead].path, options, stores)
                    fetches[ahead] = pool.submit(store.fetch, key)
                    in_flight += files[ahead].size
                ahead += 1
            fetched = fetches.pop(index, None)
            in_flight -= item.size if fetched is not None else 0
            yield item, fetched
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _object(uri: str, options: Mapping[str, Any] | None, stores: dict[str, Store]) -> tuple[Store, str]:
    """The store (its bucket) holding the object at ``uri``, made once into ``stores``, and the object's key."""
    bucket, key = split_object_uri(uri)
    if bucket not in stores:
        stores[bucket] = Store(bucket, options)
    return stores[bucket], key


def open_raw(item: InputFile, options: Mapping[str, Any] | None, fetched: Future[bytes] | None = None) -> IO[bytes]:
    """The file's bytes as stored (not inflated): a local file, or an object from its store (fetched
    whole, or streamed in ranges)."""
    if fetched is not None:
        return io.BytesIO(fetched.result())  # raises what the fetch raised
    if not is_remote(item.path):
        return open(os_path(item), "rb")
    store, key = _object(item.path, options, {})
    if _fetched_whole(item):
        return io.BytesIO(store.fetch(key))
    # A piece of a big object asks for about its own bytes (ranges read ahead by one block).
    return store.open_ranged(key, min(_REMOTE_BLOCK, max(item.size, 1 << 20)))


class _InflateLimit(io.RawIOBase):
    """A gzip stream that fails once it has inflated more than a limit, and names gzip faults."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self._raw = raw
        self._gz = gzip.GzipFile(fileobj=raw, mode="rb")
        self._limit = limit
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._gz.read(len(buffer))
        except EOFError as err:
            raise UnitError("gzip_truncated", f"the gzip stream ends early ({err}); the file is cut off") from err
        except (gzip.BadGzipFile, zlib.error) as err:
            raise UnitError("gzip_invalid", f"not a valid gzip stream: {err}") from err
        self._count += len(data)
        if self._count > self._limit:
            raise UnitError("gzip_too_large", f"inflates past {self._limit} bytes (max_inflated_bytes); a gzip bomb?")
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._gz.close()
        self._raw.close()
        super().close()


def open_stream(item: InputFile, gzipped: bool, config: ReadConfig, options: Mapping[str, Any] | None,
          fetched: Future[bytes] | None) -> IO[bytes]:
    raw = open_raw(item, options, fetched)
    if gzipped:
        return io.BufferedReader(_InflateLimit(raw, config.max_inflated_bytes), buffer_size=1 << 16)
    return raw


def read_limited(stream: IO[bytes], limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    # Some streams (WARC record bodies) return short reads: loop until EOF or past the limit.
    while size <= limit and (chunk := stream.read(min(1 << 20, limit + 1 - size))):
        chunks.append(chunk)
        size += len(chunk)
    payload = b"".join(chunks)
    if len(payload) > limit:
        raise UnitError("unit_too_large", f"larger than {limit} bytes (max_unit_bytes)")
    return payload



class _Window(io.RawIOBase):
    """At most ``size`` bytes of ``stream``, from where it stands: one piece of a split file."""

    def __init__(self, stream: IO[bytes], size: int) -> None:
        self._stream, self._left = stream, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(min(len(buffer), self._left)) if self._left > 0 else b""
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def window(stream: IO[bytes], item: InputFile) -> IO[bytes]:
    """The part of an opened file that ``item`` stands for: all of it, or one piece."""
    if item.start == 0 and item.stop is None:
        return stream
    stream.seek(item.start)
    size = item.stop - item.start if item.stop is not None else 1 << 62
    return io.BufferedReader(_Window(stream, size), buffer_size=1 << 16)


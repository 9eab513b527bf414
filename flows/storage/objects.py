"""Objects as a store lists and streams them: a listing entry with its size and version tag, a ranged reader."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fsspec

from flows.storage.errors import reading


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object as listed: its key (relative to the store's root), its size, and its ETag (as the store
    gives it, quotes included; None when the store gives none, as a local folder)."""

    key: str
    size: int
    etag: str | None


def stored_object(key: str, info: Mapping[str, Any]) -> StoredObject:
    """The listing entry ``info`` (fsspec's ``info``/``find`` detail) of the object at ``key``."""
    etag = info.get("ETag") or info.get("etag")
    return StoredObject(key, int(info["size"]), etag and str(etag))


def is_object(name: str, info: Mapping[str, Any], root: str) -> bool:
    # Folder placeholders (keys ending in "/", made by consoles) and prefixes are not objects.
    return info.get("type") == "file" and not name.endswith("/") and name.startswith(root + "/")


class RangedFile(io.RawIOBase):
    """An object in a store, read in ranges through fsspec; a failure of the store is a ``StorageError``."""

    def __init__(self, uri: str, fs: fsspec.AbstractFileSystem, path: str, block: int) -> None:
        self._uri = uri
        with reading(uri):
            self._file = fs.open(path, "rb", block_size=block)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._file.seek(offset, whence))

    def tell(self) -> int:
        return int(self._file.tell())

    def readinto(self, buffer: Any) -> int:
        with reading(self._uri):
            data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()

"""The index's files, whatever the segment format: ``.npy`` arrays mapped read-only through mmaps we own
(so their pages can be released), written piece by piece, doc_id keys, and the errors a reader raises."""

from __future__ import annotations

import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import xxhash


class IncompatibleIndexError(ValueError):
    """The index on disk was built with other parameters than the ones asked for."""


class CorruptIndexError(RuntimeError):
    """A published segment is unreadable."""


def doc_id_keys(doc_ids: Sequence[str] | Sequence[bytes] | np.ndarray) -> np.ndarray:
    """The 64-bit keys entries are sorted by: xxh3_64 of each doc_id's UTF-8 bytes (str or bytes given)."""
    return np.fromiter(
        (xxhash.xxh3_64_intdigest(d.encode("utf-8") if isinstance(d, str) else bytes(d)) for d in doc_ids),
        dtype=np.uint64,
        count=len(doc_ids),
    )


def encode(values: Sequence[str]) -> np.ndarray:
    """UTF-8 strings as a fixed-width bytes array (how doc_ids and clusters are stored)."""
    encoded = [v.encode("utf-8") for v in values]
    width = max((len(v) for v in encoded), default=1) or 1
    return np.array(encoded, dtype=f"S{width}")


def ranges(first: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ragged ranges ``[first, first + count)`` expanded: for each position, its range's index and value."""
    owner = np.repeat(np.arange(len(count)), count)
    return owner, first[owner] + (np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count))


def npy_header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """Shape, Fortran order, dtype and data offset of an open .npy file."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    return shape, fortran, dtype, f.tell()


def map_npy(path: Path, maps: list[mmap.mmap]) -> np.ndarray:
    """A read-only view of a .npy file through an mmap we own (so its pages can be released)."""
    with open(path, "rb") as f:
        shape, fortran, dtype, offset = npy_header(f)
        count = int(np.prod(shape))
        if fortran or count == 0:
            return np.asarray(np.load(path, allow_pickle=False))
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    maps.append(mapped)
    return np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)


def npy_writer(path: Path, dtype: np.dtype[Any] | type[np.generic] | str, shape: tuple[int, ...]) -> BinaryIO:
    """An open .npy file, header written: append the array's bytes in C order, then close it."""
    f = open(path, "wb")  # noqa: SIM115 (the caller closes it)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_2_0(f, header)
    return f


@dataclass
class Mapped:
    """What every opened segment has: its mmaps and a handle for reading single signature rows."""

    maps: list[mmap.mmap]
    signature_file: BinaryIO | None
    """Unbuffered handle for reading single signature rows with pread (see ``read_signatures``); None when
    the segment has no entries."""
    signature_offset: int
    num_perm: int
    arrays: dict[str, np.ndarray]
    """Every array of the segment by file name (``doc_ids`` for ``doc_ids.npy``...)."""

    @property
    def signatures(self) -> np.ndarray:
        return self.arrays["signatures"]

    @property
    def id_keys(self) -> np.ndarray:
        return self.arrays["id_keys"]

    @property
    def doc_ids(self) -> np.ndarray:
        return self.arrays["doc_ids"]

    @property
    def clusters(self) -> np.ndarray:
        return self.arrays["clusters"]

    @property
    def is_duplicate(self) -> np.ndarray:
        return self.arrays["is_duplicate"]

    @property
    def similarity(self) -> np.ndarray:
        return self.arrays["similarity"]

    @property
    def sizes(self) -> np.ndarray:
        return self.arrays["sizes"]

    @property
    def hashes(self) -> np.ndarray:
        return self.arrays["hashes"]

    @property
    def kinds(self) -> np.ndarray:
        return self.arrays["kinds"]

    @property
    def containment(self) -> np.ndarray:
        return self.arrays["containment"]

    def close(self) -> None:
        """Close the signature handle now (the mappings go when the last view of the arrays does)."""
        if self.signature_file is not None:
            self.signature_file.close()

    def release(self) -> None:
        """Drop this segment's mapped pages from our RSS (they stay in the OS page cache).

        Random band keys touch every page of a band's array once a batch is large, so without
        this the resident set would grow with the lake instead of with the batch.
        """
        for mapped in self.maps:
            mapped.madvise(mmap.MADV_DONTNEED)

    def read_signatures(self, rows: np.ndarray) -> np.ndarray:
        """Signatures of entry ``rows`` read with pread, not through the mapping.

        A page fault on a mapping maps its 64 KB neighbourhood too ("fault-around"), so 10,000
        random rows through the mmap cost the whole 512 MB file in RSS; reads cost what they read.
        """
        uniq, pos = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
        width = self.num_perm * 4
        if self.signature_file is None:
            return np.empty((0, self.num_perm), dtype=np.uint32)
        fd = self.signature_file.fileno()
        raw = b"".join(os.pread(fd, width, self.signature_offset + r * width) for r in uniq.tolist())
        return np.frombuffer(raw, dtype=np.uint32).reshape(len(uniq), self.num_perm)[pos.reshape(-1)]


def open_signatures(path: Path) -> tuple[BinaryIO, int]:
    """An unbuffered handle on ``signatures.npy`` and the offset of its data."""
    handle = open(path, "rb", buffering=0)  # noqa: SIM115 (lives with the segment)
    return handle, npy_header(handle)[3]

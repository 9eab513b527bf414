"""Writing one index segment (its arrays, band keys one band at a time, ``meta.json`` last) and
publishing it with one rename.

A run writes one segment into its staging area (``write_segment``) and publishes it with one
atomic directory rename to ``INDEX/segments/<name>`` (``publish_segment``, or the caller's own
rename) once its Parquet files are in place: a reader sees a whole segment or none. Names must be
unique for ever (use the run id): compaction records the names it replaced, and names starting
with ``.`` or ``_`` are skipped by readers. A new entry is written for each doc_id not yet in the
lake, kept or duplicate, so later runs can match old duplicates too (``LakeIndex.write_segment``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from flows.dedup.config import DedupConfig
from flows.dedup.fingerprint import band_key
from flows.dedup.index.segment import FORMAT, doc_id_keys
from flows.lake.layout import SEGMENT_META, SEGMENTS


def _encode(values: Sequence[str]) -> np.ndarray:
    encoded = [v.encode("utf-8") for v in values]
    width = max((len(v) for v in encoded), default=1) or 1
    return np.array(encoded, dtype=f"S{width}")


def _npy_writer(path: Path, dtype: type[np.generic], shape: tuple[int, ...]) -> BinaryIO:
    """An open .npy file, header written: append the array's bytes in C order, then close it."""
    f = open(path, "wb")  # noqa: SIM115 (the caller closes it)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_2_0(f, header)
    return f


def _write_bands(segment_dir: Path, signatures: np.ndarray, config: DedupConfig) -> None:
    # One band at a time: memory stays at a few n-sized vectors, not bands x n x 16 bytes.
    shape = (config.bands, len(signatures))
    with (
        _npy_writer(segment_dir / "band_keys.npy", np.uint64, shape) as keys_file,
        _npy_writer(segment_dir / "band_rows.npy", np.uint32, shape) as rows_file,
    ):
        for band in range(config.bands):
            key = band_key(signatures, config, band)
            order = np.argsort(key, kind="stable")
            keys_file.write(key[order].tobytes())
            rows_file.write(order.astype(np.uint32).tobytes())


def segment_destination(index_dir: Path, segment_dir: Path) -> Path:
    """Where a written segment must be renamed to: ``index_dir/segments/<segment_dir.name>``."""
    return Path(index_dir) / SEGMENTS / Path(segment_dir).name


def publish_segment(index_dir: Path, segment_dir: Path) -> Path:
    """Make a written segment visible with one atomic rename (same filesystem required)."""
    dest = segment_destination(index_dir, segment_dir)
    if dest.name.startswith((".", "_")):
        raise ValueError(f"segment name {dest.name!r} starts with '.' or '_': readers skip it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # os.rename fails on a non-empty destination rather than overwrite an existing segment.
    Path(segment_dir).rename(dest)
    return dest


def write_arrays(
    segment_dir: Path,
    config: DedupConfig,
    *,
    doc_ids: list[str],
    clusters: list[str],
    signatures: np.ndarray,
    is_duplicate: np.ndarray,
    similarity: np.ndarray,
    sizes: np.ndarray,
    hashes: np.ndarray,
    kinds: np.ndarray,
    containment: np.ndarray,
    replaces: Sequence[str] = (),
) -> None:
    """Write a segment's files into ``segment_dir`` (new or empty), ``meta.json`` last; the entries are
    the rows of the keyword arrays, which must be aligned."""
    segment_dir.mkdir(parents=True, exist_ok=True)
    if any(segment_dir.iterdir()):
        raise FileExistsError(f"segment directory {segment_dir} is not empty")
    n = len(doc_ids)
    _write_bands(segment_dir, signatures, config)
    idk = doc_id_keys(doc_ids)
    id_order = np.argsort(idk, kind="stable")
    arrays = {
        "signatures": signatures,
        "id_keys": idk[id_order],
        "id_rows": id_order.astype(np.uint32),
        "doc_ids": _encode(doc_ids),
        "clusters": _encode(clusters),
        "is_duplicate": is_duplicate,
        "similarity": similarity,
        "sizes": sizes,
        "hashes": hashes,
        "kinds": kinds,
        "containment": containment,
    }
    for name, array in arrays.items():
        np.save(segment_dir / f"{name}.npy", array, allow_pickle=False)
    meta = {"format": FORMAT, "index_params": config.index_params(), "count": n, "replaces": list(replaces)}
    # meta.json last: a segment dir with it is complete (the rename makes it visible anyway).
    (segment_dir / SEGMENT_META).write_text(json.dumps(meta, indent=1, sort_keys=True))

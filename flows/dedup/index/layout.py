"""The partitioned index on disk (format 3): ``index.json``, the partition folders, which segments are live,
and the checks that an index fits a config.

Layout (``INDEX = LAKE/_index``, ``P = dedup.partitions``, ``pNNNN`` the partition number in 4 decimal digits)::

    INDEX/index.json                    {"format": 3, "partitions": P, "index_params": ...}: P is fixed here,
                                        when the index is created (the first run or migration writes it)
    INDEX/pNNNN/<name>/meta.json        format 3, partition, partitions, index parameters (its banding),
                                        entry count, band-row count, replaced segments (of this partition)
    INDEX/pNNNN/<name>/keys.npy         (m,) uint64, the band keys k with k % P == NNNN, sorted ascending
    INDEX/pNNNN/<name>/refs.npy         (m,) uint64, the doc-id key of the entry each key belongs to;
                                        equal keys ordered by ref
    INDEX/pNNNN/<name>/id_keys.npy      (n,) uint64 xxh3_64(doc_id) of the entries homed here
                                        (id key % P == NNNN), sorted; the arrays below are aligned with it
    INDEX/pNNNN/<name>/signatures.npy   (n, num_perm) uint32 MinHash values
    INDEX/pNNNN/<name>/doc_ids.npy      (n,) bytes, their doc_id (UTF-8); clusters.npy their dup_cluster
    INDEX/pNNNN/<name>/is_duplicate.npy, similarity.npy, sizes.npy, hashes.npy, kinds.npy, containment.npy
                                        as in format 2 (``flows.dedup.index.segment``)
    INDEX/segments/<name>/              segments of formats 1 and 2 (lakes indexed before format 3)

A band row says "the entry whose doc-id key is ``ref`` has band key ``k``"; the entry itself (its signature,
decision) lives in its home partition, found there by ``ref``. So a query's band key is looked up in one
partition only, and each partition holds 1/P of the lake: it is compacted by itself (``compaction``), in
size tiers, and a query touches O(log L) segments per partition. A run writes one segment name (its run id)
in every partition that gets rows; its commit moves each folder into place (``meta.json`` last on a bucket).

A partition's segment is live unless another segment of that partition names it in ``replaces``; folders
whose name starts with ``.`` or ``_`` are skipped, as under ``segments/``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from flows.dedup import graph
from flows.dedup.config import DedupConfig
from flows.dedup.index.files import IncompatibleIndexError
from flows.dedup.index.segment import BANDING, check_params, live_in

FORMAT = 3
"""3: partitioned by band key (band rows) and doc-id key (entries); see the module docstring."""
READABLE_FORMATS = (1, 2, 3)
INDEX_FILE = "index.json"
_PARTITION = re.compile(r"p(\d{4})")


def partition_name(partition: int) -> str:
    """The folder of a partition under ``INDEX``: ``p0000`` ... ``p4095``."""
    return f"p{partition:04d}"


def partition_of(keys: np.ndarray, partitions: int) -> np.ndarray:
    """The partition of band keys (``k % P``, the run's dedup stages' own: ``flows.dedup.graph``) or of doc-id
    keys (an entry's home), as intp."""
    return graph.partition_of(keys, partitions).astype(np.intp)


def index_file(config: DedupConfig) -> dict[str, Any]:
    """What ``index.json`` records for an index created with ``config``."""
    return {"format": FORMAT, "partitions": config.partitions, "index_params": config.index_params()}


def read_index_file(index_dir: Path) -> dict[str, Any] | None:
    path = Path(index_dir) / INDEX_FILE
    return dict(json.loads(path.read_text())) if path.is_file() else None


def write_index_file(folder: Path, config: DedupConfig) -> Path:
    """Write ``folder/index.json`` for ``config`` (whole or not at all)."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{INDEX_FILE}.tmp"
    partial.write_text(json.dumps(index_file(config), indent=1, sort_keys=True))
    os.replace(partial, folder / INDEX_FILE)
    return folder / INDEX_FILE


def recorded_partitions(index_dir: Path) -> int | None:
    """The number of partitions the index was created with, or None when it has no ``index.json``."""
    info = read_index_file(index_dir)
    return None if info is None else int(info["partitions"])


def check_partitions(index_dir: Path, recorded: int, config: DedupConfig) -> None:
    """Raise ``IncompatibleIndexError`` unless ``config`` asks for the partitions the index has."""
    if recorded != config.partitions:
        raise IncompatibleIndexError(
            f"the near-duplicate index at {index_dir} has {recorded} partitions (fixed when it was created, "
            f"recorded in {INDEX_FILE}) and this run asks for dedup.partitions = {config.partitions}. "
            f"Run with dedup.partitions: {recorded} (or move that directory aside to start a new index: documents "
            "already in the lake are then not matched by new runs)."
        )


def check_index(index_dir: Path, config: DedupConfig) -> dict[str, Any] | None:
    """Check ``index.json`` against ``config`` (format, partitions, signature parameters); return it."""
    info = read_index_file(index_dir)
    if info is not None:
        check_params(Path(index_dir) / INDEX_FILE, {**info, "index_params": info.get("index_params", {})}, config,
                     formats=(FORMAT,), where=Path(index_dir))
        check_partitions(Path(index_dir), int(info["partitions"]), config)
    return info


def partition_folders(index_dir: Path) -> dict[int, Path]:
    """The partition folders present under ``index_dir``, by number."""
    if not Path(index_dir).is_dir():
        return {}
    found = {}
    for path in sorted(Path(index_dir).iterdir()):
        match = _PARTITION.fullmatch(path.name)
        if match and path.is_dir():
            found[int(match.group(1))] = path
    return found


def live_partitions(index_dir: Path, config: DedupConfig) -> dict[int, list[tuple[Path, dict[str, Any]]]]:
    """``(path, meta)`` of the live segments of each partition that has some, checked against ``config``.

    Raises ``IncompatibleIndexError`` for a segment of another format, partitioning or signature parameters,
    ``CorruptIndexError`` for a live folder without ``meta.json``.
    """
    out: dict[int, list[tuple[Path, dict[str, Any]]]] = {}
    for partition, folder in partition_folders(index_dir).items():
        live = live_in(folder)
        for path, meta in live:
            check_segment(path, meta, partition, config, Path(index_dir))
        if live:
            out[partition] = live
    return out


def check_segment(path: Path, meta: dict[str, Any], partition: int, config: DedupConfig, index_dir: Path) -> None:
    """Raise ``IncompatibleIndexError`` unless a format-3 segment fits ``config`` and sits in its partition."""
    check_params(path, meta, config, formats=(FORMAT,), where=index_dir)
    check_partitions(index_dir, int(meta["partitions"]), config)
    if int(meta["partition"]) != partition:
        raise IncompatibleIndexError(f"index segment {path} belongs to partition {meta['partition']}, not "
                                     f"{partition}: move it back to {partition_name(int(meta['partition']))}")


def banding_of(meta: dict[str, Any]) -> tuple[int, int]:
    """``(bands, rows)`` of a segment's band keys."""
    params = meta["index_params"]
    return int(params[BANDING[0]]), int(params[BANDING[1]])

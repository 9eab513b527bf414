"""Planning shards: files grouped into units of work, big JSONL and Parquet files cut into pieces, a short tail."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from flows.read.streams import open_raw
from flows.read.units import PARQUET, InputFile, ReadConfig, unit_kind


def plan_shards(files: list[InputFile], config: ReadConfig,
                options: Mapping[str, Any] | None = None) -> list[list[InputFile]]:
    """Group files into shards of at most ``shard_files`` files and about ``shard_bytes`` bytes; the last
    few shards are smaller (``TAIL_SHARDS``), so that no worker is left alone with a whole shard at the end.

    An uncompressed JSONL file larger than ``shard_bytes`` is split at line starts into pieces of about
    that size, each a shard: every worker can take part in one big dump; a Parquet file likewise, between
    row groups. (A compressed file or a WARC cannot be entered in the middle: it stays one shard, read in
    chunks.) A big JSONL file is scanned once for line starts here (streamed, also from a store, with
    the storage ``options``); a Parquet file's row groups are in its footer.
    """
    shards = _group([piece for whole in files for piece in _pieces(whole, config.shard_bytes, options)],
                    config.shard_files, config.shard_bytes)
    if len(shards) <= TAIL_SHARDS:
        return shards
    # The workers should finish together: the last shards are planned again at a fraction of the size,
    # so the one still running when the others run out of work is short (a whole file stands for itself).
    small = max(1, config.shard_bytes // TAIL_SPLIT)
    tail = [item for shard in shards[-TAIL_SHARDS:] for item in shard]
    tail = [piece for item in tail
            for piece in (_pieces(item, small, options) if item.start == 0 and item.stop is None else [item])]
    return shards[:-TAIL_SHARDS] + _group(tail, config.shard_files, small)


# The last TAIL_SHARDS shards of a plan are cut TAIL_SPLIT times smaller.
TAIL_SHARDS = 4
TAIL_SPLIT = 4


def _group(items: list[InputFile], max_files: int, max_bytes: int) -> list[list[InputFile]]:
    """Consecutive items in shards of at most ``max_files`` files and about ``max_bytes`` bytes."""
    shards: list[list[InputFile]] = []
    current: list[InputFile] = []
    current_bytes = 0
    for item in items:
        if current and (len(current) >= max_files or current_bytes + item.size > max_bytes):
            shards.append(current)
            current, current_bytes = [], 0
        current.append(item)
        current_bytes += item.size
    if current:
        shards.append(current)
    return shards


# Bytes read at a time while a large JSONL file is scanned for piece boundaries.
_SCAN_BLOCK = 1 << 22


def _pieces(item: InputFile, limit: int, options: Mapping[str, Any] | None) -> list[InputFile]:
    """``item`` cut at line starts (Parquet: between row groups) into pieces of at least ``limit`` bytes,
    or ``[item]`` when it is not a large uncompressed JSONL or Parquet file (or cannot be read now:
    reading it will say why)."""
    suffix, gzipped = unit_kind(item.rel)
    if suffix not in (".jsonl", PARQUET) or gzipped or item.size <= limit:
        return [item]
    try:
        if suffix == PARQUET:
            return _row_group_pieces(item, limit, options)
        return _line_aligned_pieces(item, limit, options)
    except (OSError, pa.ArrowException):
        return [item]


def _line_aligned_pieces(item: InputFile, limit: int, options: Mapping[str, Any] | None) -> list[InputFile]:
    pieces: list[InputFile] = []
    start, first_line = 0, 1
    block_start, line_at_block = 0, 1
    with open_raw(item, options) as handle:
        while block := handle.read(_SCAN_BLOCK):
            # The next cut is just after the first newline at least ``limit`` bytes past ``start``.
            while (at := block.find(b"\n", max(0, start + limit - 1 - block_start))) >= 0:
                cut = block_start + at + 1
                pieces.append(_piece(item, start, cut, first_line))
                start, first_line = cut, line_at_block + block.count(b"\n", 0, at + 1)
            line_at_block += block.count(b"\n")
            block_start += len(block)
    if start < block_start or not pieces:
        pieces.append(_piece(item, start, None, first_line))
    return pieces


def _piece(item: InputFile, start: int, stop: int | None, first_line: int) -> InputFile:
    size = (stop if stop is not None else item.size) - start
    return InputFile(item.path, item.rel, size, start, stop, first_line, item.etag)


def _row_group_pieces(item: InputFile, limit: int, options: Mapping[str, Any] | None) -> list[InputFile]:
    """Consecutive row groups of at least ``limit`` bytes (compressed, as stored) each; ``size`` is theirs."""
    with open_raw(item, options) as handle:
        metadata = pq.ParquetFile(handle).metadata
    pieces: list[InputFile] = []
    start = size = 0
    first_row = row = 1
    for group in range(metadata.num_row_groups):
        size += stored_size(metadata.row_group(group))
        row += metadata.row_group(group).num_rows
        if size >= limit or group == metadata.num_row_groups - 1:
            stop = group + 1 if group < metadata.num_row_groups - 1 else None
            pieces.append(InputFile(item.path, item.rel, size, start, stop, first_row, item.etag))
            start, size, first_row = group + 1, 0, row
    return pieces if len(pieces) > 1 else [item]


def stored_size(row_group: Any) -> int:
    """Bytes a Parquet row group takes in its file (compressed): what a piece's ``size`` counts."""
    return sum(row_group.column(c).total_compressed_size for c in range(row_group.num_columns))


"""What an export is asked to do: its options, the size syntax, and the two kinds of failure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("parquet", "jsonl.gz", "jsonl.zst")
# What a trainer needs; the lake's names, except that doc_id is written as ``id`` (Dolma, datatrove, HF).
DEFAULT_COLUMNS = ("doc_id", "text", "url", "title", "lang", "quality_score")
OUTPUT_NAMES = {"doc_id": "id"}
ALIASES = {"id": "doc_id"}
DEFAULT_SHARD_BYTES = 500_000_000
MIN_SHARD_BYTES = 1_000
MANIFEST = "manifest.json"

# Decimal units (KB = 1000 bytes, as disk and cloud vendors count) and binary ones (KiB = 1024).
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE | re.ASCII)


class ExportUsageError(ValueError):
    """The export was asked for something it cannot do (bad predicate, column, size or OUT): exit 2."""


class ExportError(RuntimeError):
    """The export could not complete (the lake or OUT failed): exit 1."""


def parse_size(text: str) -> int:
    """Bytes from ``"200000"``, ``"200KB"``, ``"1.5GB"`` (decimal) or ``"64MiB"`` (binary)."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ExportUsageError(f"not a size: {text!r} (bytes, or a number with KB, MB, GB, TB = powers of 1000, "
                               "or KiB, MiB, GiB, TiB = powers of 1024)")
    return int(float(match.group(1)) * _UNITS[unit])


def output_name(column: str) -> str:
    return OUTPUT_NAMES.get(column, column)


@dataclass(frozen=True)
class ExportOptions:
    """One export: LAKE's kept documents matching ``where`` into size-capped shards under ``out``."""

    lake: str
    out: str
    where: str | None = None
    columns: Sequence[str] = DEFAULT_COLUMNS
    format: str = "parquet"
    shard_bytes: int = DEFAULT_SHARD_BYTES
    shuffle_seed: int | None = None
    replace: bool = False
    storage_options: dict[str, Any] = field(default_factory=dict)
    # duckdb's buffer pool and threads: the scan streams, so these bound memory; one thread reads one row
    # group at a time (more threads: more row groups in memory at once, ~2x faster on big lakes).
    memory_limit: str = "128MB"
    threads: int = 1
    bucket_bytes: int = 64_000_000  # the shuffle sorts buckets of at most about this much in memory
    scratch_dir: str | None = None  # temporary files (the shuffle's buckets, shards bound for a bucket)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ExportUsageError(f"unknown format {self.format!r}: one of {', '.join(FORMATS)}")
        if self.shard_bytes < MIN_SHARD_BYTES:
            raise ExportUsageError(f"--shard-bytes {self.shard_bytes} is below the minimum of {MIN_SHARD_BYTES}")
        if self.shuffle_seed is not None and not 0 <= self.shuffle_seed < 2**64:
            raise ExportUsageError(f"--shuffle-seed must be between 0 and 2**64 - 1, not {self.shuffle_seed}")
        if self.threads < 1:
            raise ExportUsageError(f"--threads must be at least 1, not {self.threads}")
        if not self.columns:
            raise ExportUsageError("--columns names no column")

    @property
    def source_columns(self) -> list[str]:
        """The lake columns asked for, aliases resolved, each once, in the order given."""
        return list(dict.fromkeys(ALIASES.get(c, c) for c in self.columns))

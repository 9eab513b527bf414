"""The run's configuration: one typed, validated object, one section per stage.

``IngestConfig`` is the Prefect flow's only parameter, so a deployment's ``parameters`` in
``prefect.yaml`` are validated against it; unknown keys fail loudly (``extra="forbid"``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flows.dedup import DedupConfig
from flows.extract import ExtractConfig
from flows.quality import QualityConfig
from flows.read import ReadConfig


class RunnerConfig(BaseModel):
    """Where the per-shard tasks run."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    kind: Literal["process", "thread", "dask"] = "process"
    """``process``: a local pool of worker processes (CPU-bound stages use every core);
    ``thread``: threads in the flow's process (one core; handy for debugging);
    ``dask``: a Dask cluster through prefect-dask (``dask_address``, or a local cluster when empty)."""
    workers: int = Field(0, ge=0)
    """Worker processes or threads; 0 means one per CPU core."""
    dask_address: str | None = None
    """Scheduler address of an existing Dask cluster, e.g. ``tcp://10.0.0.5:8786``."""
    shards_in_flight: int = Field(0, ge=0)
    """Shards being processed at once (bounds memory); 0 means twice the workers."""


class IngestConfig(BaseModel):
    """Everything one ingest run needs; every field has a default."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    source: str = "seeds"
    """File, directory (read recursively) or glob pattern to ingest."""
    lake: str = "lake"
    """Root folder of the lake."""
    lock_wait_s: float = Field(0.0, ge=0)
    """How long to wait for another run that holds the lake before failing."""
    read: ReadConfig = ReadConfig()
    extract: ExtractConfig = ExtractConfig()
    dedup: DedupConfig = DedupConfig()
    quality: QualityConfig = QualityConfig()
    runner: RunnerConfig = RunnerConfig()

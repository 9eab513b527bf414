"""The run's configuration: one typed, validated object, one section per stage.

``IngestConfig`` is the Prefect flow's only parameter, so a deployment's ``parameters`` in
``prefect.yaml`` are validated against it; unknown keys fail loudly (``extra="forbid"``).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flows.dedup import DedupConfig
from flows.extract import ExtractConfig
from flows.quality import QualityConfig
from flows.read import ReadConfig


class RunnerConfig(BaseModel):
    """Where the per-shard tasks run."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    kind: Literal["auto", "process", "thread", "dask"] = "auto"
    """``process``: a local pool of worker processes, each with its own extraction process;
    ``thread``: worker threads in the flow's process, each with its own extraction process (HTML
    extraction, most of the CPU, still runs in parallel; the other stages share one core);
    ``auto``: ``thread`` up to ``THREAD_WORKERS_MAX`` workers when extraction is sandboxed (a third less
    memory, and no slower: bench/e2e.py), else ``process``;
    ``dask``: a Dask cluster through prefect-dask (``dask_address``, or a local cluster when empty)."""
    workers: int = Field(0, ge=0)
    """Worker processes or threads; 0 means one per CPU core."""
    dask_address: str | None = None
    """Scheduler address of an existing Dask cluster, e.g. ``tcp://10.0.0.5:8786``."""
    shards_in_flight: int = Field(0, ge=0)
    """Shards being processed at once (bounds memory); 0 means twice the workers."""
    stage_tasks: bool = False
    """Run each stage of each shard as its own Prefect task run (its state and time in the UI) rather
    than one task run per shard; costs ~2 ms of CPU per page (the Prefect server's and client's), and a
    shard is then held whole rather than processed in chunks."""

    def local_kind(self, sandboxed_extraction: bool) -> Literal["process", "thread", "dask"]:
        """The kind ``auto`` stands for here (other kinds stand for themselves)."""
        if self.kind != "auto":
            return self.kind
        threads_suffice = sandboxed_extraction and self.worker_count() <= THREAD_WORKERS_MAX
        return "thread" if threads_suffice else "process"

    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1


# With extraction in child processes, a worker thread holds the GIL for ~5 ms of the ~21 ms a page
# costs (reading, normalizing, scoring, hashing): beyond ~3 threads the GIL, not the cores, would
# limit throughput, so ``auto`` switches to processes.
THREAD_WORKERS_MAX = 3


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

"""The run's configuration: one typed, validated object, one section per stage.

``IngestConfig`` is the Prefect flow's only parameter, so a deployment's ``parameters`` in
``prefect.yaml`` are validated against it; unknown keys fail loudly (``extra="forbid"``).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flows.dedup import DedupConfig
from flows.extract import ExtractConfig
from flows.quality import QualityConfig
from flows.read import ReadConfig
from flows.storage import redact


class StorageConfig(BaseModel):
    """How to reach a lake or SOURCE on an object store (``s3://``, ``gs://``, ``az://``), and this machine's
    local folders for a remote lake. Credentials come the standard way (the AWS chain and
    ``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``), not from here."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    options: dict[str, Any] = Field(default_factory=dict)
    """fsspec storage options for s3fs / gcsfs / adlfs, e.g. ``{"endpoint_url": "http://minio:9000"}`` or
    ``{"client_kwargs": {"region_name": "eu-west-1"}}``. A value ``"env:NAME"`` is read from the
    environment variable NAME where the run executes, so secrets stay out of parameters; secret-looking
    values are redacted in the manifest."""
    cache_dir: str = ""
    """Local cache of a remote lake's near-duplicate index (default ``SIFTLAKE_CACHE`` or
    ``~/.cache/siftlake``); safe to delete."""
    cache_max_bytes: int = Field(20 * 1024**3, ge=0)
    """Bound on the cache: the least recently used index partitions no task holds are evicted, of any lake (0: no
    bound)."""
    scratch_dir: str = ""
    """Local work folder of a remote lake's run (default ``SIFTLAKE_SCRATCH`` or the system temp folder);
    finished shards are mirrored to the lake's ``_staging/`` so a run can resume on another machine."""
    lock_lease_s: float = Field(60.0, ge=5)
    """Lease of a remote lake's lock: renewed every third of it while the run works; a lock whose holder
    stopped renewing is taken over once it has expired."""


class RunnerConfig(BaseModel):
    """Where the per-shard tasks run."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    kind: Literal["auto", "process", "thread", "dask"] = "auto"
    """``process``: a local pool of worker processes, each with its own extraction process;
    ``thread``: worker threads in the flow's process, each with its own extraction process (HTML
    extraction, most of the CPU, still runs in parallel; the other stages share one core);
    ``auto``: ``thread`` up to ``THREAD_WORKERS_MAX`` workers when extraction is sandboxed (a third less
    memory, and no slower: bench/e2e), else ``process``;
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
    """File, directory (read recursively) or glob pattern to ingest, as a local path or a URI (``s3://``...)."""
    lake: str = "lake"
    """Root of the lake: a local folder, or a ``file://``, ``s3://``, ``gs://`` or ``az://`` URI."""
    lock_wait_s: float = Field(0.0, ge=0)
    """How long to wait for another run that holds the lake before failing."""
    read: ReadConfig = ReadConfig()
    extract: ExtractConfig = ExtractConfig()
    dedup: DedupConfig = DedupConfig()
    quality: QualityConfig = QualityConfig()
    runner: RunnerConfig = RunnerConfig()
    storage: StorageConfig = StorageConfig()

    def redacted(self) -> dict[str, Any]:
        """The config as JSON data with secret-looking storage options replaced (for manifests and logs)."""
        data = self.model_dump(mode="json")
        data["storage"]["options"] = redact(data["storage"]["options"])
        return data

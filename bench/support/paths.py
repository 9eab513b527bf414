"""Where the benchmarks find the repository, the dev corpora and their caches."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def corpora_dir() -> Path:
    """The gold corpora folder: ``$SIFTLAKE_CORPORA`` or ``../shared/corpora`` beside the repo.

    The corpora live outside the repository and are read in place, never copied."""
    env = os.environ.get("SIFTLAKE_CORPORA")
    return Path(env) if env else (REPO.parent / "shared" / "corpora").resolve()


def cache_dir() -> Path:
    """Where built dev sets and extraction candidates are cached: ``$SIFTLAKE_CACHE`` or ``~/.cache/siftlake``."""
    return Path(os.environ.get("SIFTLAKE_CACHE", Path.home() / ".cache" / "siftlake"))

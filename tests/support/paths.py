"""Where the tests find the repository, the seeds and the gold corpora."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
SEEDS = REPO / "seeds"
CORPORA = Path(os.environ.get("SIFTLAKE_CORPORA", REPO.parent / "shared" / "corpora"))

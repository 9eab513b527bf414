"""Writing a segment and publishing it with one rename."""

from __future__ import annotations

import json
from pathlib import Path

from flows.dedup import LakeIndex, publish_segment, resolve
from flows.dedup.index.write import segment_destination
from tests.dedup.helpers import CONFIG, FIRST


def test_segment_destination_and_publish(index_dir: Path, tmp_path: Path) -> None:
    staging = tmp_path / "staging" / "run-7"
    assert segment_destination(index_dir, staging) == index_dir / "segments" / "run-7"
    LakeIndex.open(index_dir, CONFIG).write_segment(
        staging, FIRST, resolve(FIRST, LakeIndex.open(index_dir, CONFIG), CONFIG)
    )
    assert publish_segment(index_dir, staging).is_dir()
    meta = json.loads((index_dir / "segments" / "run-7" / "meta.json").read_text())
    assert meta["count"] == 4 and meta["index_params"]["num_perm"] == CONFIG.num_perm

"""The index on this machine: when the flow merges segments."""

from __future__ import annotations

from pathlib import Path

from flows.dedup import LakeIndex, resolve
from tests.dedup.helpers import CONFIG, article, batch_of


def test_the_flow_compacts_the_index_when_segments_pile_up(tmp_path: Path) -> None:
    from prefect.logging import disable_run_logger

    from flows.dedup import index as dedup_index
    from flows.ingest import _compact_index
    from flows.storage import Store

    index_dir = tmp_path / "_index"
    for number in range(34):
        batch = batch_of([f"doc-{number}"], [article(number)])
        index = LakeIndex.open(index_dir, CONFIG)
        staged = tmp_path / "staging" / f"seg{number:03d}"
        index.write_segment(staged, f"seg{number:03d}", batch, resolve(batch, index, CONFIG))
        dedup_index.publish_segment(index_dir, staged, f"seg{number:03d}")
    assert max(dedup_index.segments_per_partition(index_dir).values()) == 34
    with disable_run_logger():
        _compact_index(Store(str(tmp_path)), index_dir, CONFIG, "run-x")
    assert max(dedup_index.segments_per_partition(index_dir).values()) <= 6
    assert len(LakeIndex.open(index_dir, CONFIG)) == 34

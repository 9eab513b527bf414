"""Compaction: size-tiered merges that keep every answer, old format and new alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flows.dedup import LakeIndex, compact, resolve
from tests.dedup.helpers import CONFIG, FIRST, FORMAT_1_EXPECTED, article, as_dict, batch_of, edit, run, segment_metas


def test_compaction_keeps_every_answer(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    second = batch_of(["y1", "y2"], [article(5), edit(article(2), 3)])
    run(index_dir, "run-2", second)
    probe = batch_of(["p1", "p2", "p3"], [edit(article(5), 4), edit(article(1), 4), article(6)])
    before = as_dict(probe, resolve(probe, LakeIndex.open(index_dir, CONFIG), CONFIG))
    assert compact(index_dir, CONFIG, "compact-1") is not None
    assert [p.name for p in (index_dir / "segments").iterdir()] == ["compact-1"]
    index = LakeIndex.open(index_dir, CONFIG)
    assert len(index) == 6
    assert as_dict(probe, resolve(probe, index, CONFIG)) == before
    assert before["p1"][:2] == ("y1", True) and before["p2"][:2] == ("a1", True)


def test_compaction_is_size_tiered_and_never_resurrects_replaced_segments(index_dir: Path) -> None:
    for r in range(3):
        run(
            index_dir,
            f"run-{r}",
            batch_of([f"r{r}-{i}" for i in range(r + 2)], [article(500 + 10 * r + i) for i in range(r + 2)]),
        )
    # Only the two smallest (2 + 3 entries) fit in 5.
    assert compact(index_dir, CONFIG, "c-1", max_entries=5) is not None
    names = sorted(p.name for p in (index_dir / "segments").iterdir())
    assert names == ["c-1", "run-2"]
    (index_dir / "segments" / "run-0").mkdir()  # a leftover that deletion missed
    assert compact(index_dir, CONFIG, "c-2") is not None
    index = LakeIndex.open(index_dir, CONFIG)
    assert len(index) == 9 and [s.name for s in index.segments] == ["c-2"]


def test_compacting_old_and_new_segments_keeps_every_answer(format_1_index: Path) -> None:
    words = article(9, 400).split()
    run(format_1_index, "run-3", batch_of(["new"], [" ".join(words)]))
    probe = batch_of(
        ["near-old", "excerpt-old", "excerpt-new", "near-new"],
        [edit(article(1), 31), " ".join(article(4, 500).split()[:200]), " ".join(words[:160]),
         edit(" ".join(words), 32)],
    )
    before = resolve(probe, LakeIndex.open(format_1_index, CONFIG), CONFIG)
    entries = [*FORMAT_1_EXPECTED["entries"], "new"]
    known_before = LakeIndex.open(format_1_index, CONFIG).decisions_of(entries)
    merged = compact(format_1_index, CONFIG, "compact-1")
    assert merged is not None and list(segment_metas(format_1_index)) == ["compact-1"]
    meta = segment_metas(format_1_index)["compact-1"]
    assert meta["format"] == 2 and meta["index_params"] == CONFIG.index_params()  # re-banded to 64 x 2
    index = LakeIndex.open(format_1_index, CONFIG)
    after = resolve(probe, index, CONFIG)
    assert as_dict(probe, after) == as_dict(probe, before)
    assert after.dup_kind == before.dup_kind == ["near", None, "contained", "near"]
    # An old entry's unknown set size never makes it a container, before or after compaction.
    assert as_dict(probe, after)["excerpt-old"] == ("excerpt-old", False, 1.0)
    known = index.decisions_of(entries)
    assert known.dup_cluster == known_before.dup_cluster and known.dup_kind == known_before.dup_kind
    assert np.array_equal(known.dup_containment, known_before.dup_containment, equal_nan=True)
    assert np.isnan(known.dup_containment[:7]).all() and known.dup_containment[7] == 1.0

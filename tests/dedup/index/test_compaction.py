"""Compaction: each partition merged by itself in size tiers, segments per partition logarithmic in the lake, every
answer kept, replaced segments never back; older-format segments folded in with their answers."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np

from flows.dedup import DedupConfig, LakeIndex, compact, resolve
from flows.dedup.index import migrate, segments_per_partition
from flows.dedup.index.compaction import TIER_BASE, TIER_SEGMENTS, tier_of
from tests.dedup.helpers import CONFIG, FIRST, FORMAT_1_EXPECTED, article, as_dict, batch_of, edit, part_metas, run


def test_compaction_keeps_every_answer(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    second = batch_of(["y1", "y2"], [article(5), edit(article(2), 3)])
    run(index_dir, "run-2", second)
    probe = batch_of(["p1", "p2", "p3"], [edit(article(5), 4), edit(article(1), 4), article(6)])
    before = as_dict(probe, resolve(probe, LakeIndex.open(index_dir, CONFIG), CONFIG))
    assert compact(index_dir, CONFIG, "compact-1", everything=True)
    assert max(segments_per_partition(index_dir).values()) == 1
    assert {k.split("/")[1] for k in part_metas(index_dir)} <= {"compact-1", "run-1", "run-2"}
    index = LakeIndex.open(index_dir, CONFIG)
    assert len(index) == 6
    assert as_dict(probe, resolve(probe, index, CONFIG)) == before
    assert before["p1"][:2] == ("y1", True) and before["p2"][:2] == ("a1", True)


def _probe(index_dir: Path, config: DedupConfig) -> tuple[list[object], dict[str, tuple[str, bool, float]]]:
    probe = batch_of([f"q{i}" for i in range(12)], [edit(article(700 + i % 6), 50 + i, 0.05) for i in range(12)])
    index = LakeIndex.open(index_dir, config)
    near, inside = index.query(probe.signatures, probe.sizes)
    got = [near.query_rows.tolist(), near.dup_cluster, near.similarity.tolist(), inside.query_rows.tolist(),
           inside.dup_cluster]
    return got, as_dict(probe, resolve(probe, index, config))


def test_tiered_compaction_keeps_segments_per_partition_logarithmic_and_answers_unchanged(tmp_path: Path) -> None:
    config = DedupConfig(partitions=4)
    compacted, plain = tmp_path / "a" / "_index", tmp_path / "b" / "_index"
    most = []
    for number in range(48):  # many small runs, as a lake fed often gets
        texts = [edit(article(700 + (number + j) % 6), number * 7 + j, 0.1) for j in range(1 + number % 3)]
        batch = batch_of([f"r{number}-{j}" for j in range(len(texts))], texts)
        run(compacted, f"run-{number:03d}", batch, config)
        run(plain, f"run-{number:03d}", batch, config)
        compact(compacted, config, f"compact-{number:03d}")
        counts = segments_per_partition(compacted)
        most.append(max(counts.values()))
        # Fewer than TIER_SEGMENTS per tier, and no more tiers than the partition's size allows.
        size = max(sum(int(m["count"]) + int(m["rows"]) for k, m in part_metas(compacted).items()
                       if k.startswith(f"p{p:04d}")) for p in counts)
        assert most[-1] <= (TIER_SEGMENTS - 1) * (int(math.log(size, TIER_BASE)) + 1)
    assert max(most) < 12 and max(segments_per_partition(plain).values()) == 48
    assert len(LakeIndex.open(compacted, config)) == len(LakeIndex.open(plain, config))
    assert _probe(compacted, config) == _probe(plain, config)
    tiers = [tier_of(m) for m in part_metas(compacted).values()]
    assert max(tiers) > min(tiers)  # merged segments moved up


def test_replaced_segments_never_come_back(index_dir: Path) -> None:
    for r in range(4):
        run(index_dir, f"run-{r}", batch_of([f"r{r}-{i}" for i in range(2)], [article(500 + 10 * r + i)
                                                                              for i in range(2)]))
    leftovers = {p: p.with_name("_keep") for p in index_dir.glob("p*/run-0")}
    for path, copy in leftovers.items():
        shutil.copytree(path, copy)
    assert compact(index_dir, CONFIG, "c-1", everything=True)
    for path, copy in leftovers.items():
        copy.rename(path)  # a replaced folder that deletion missed (a crash)
    assert len(LakeIndex.open(index_dir, CONFIG)) == 8
    run(index_dir, "run-9", batch_of(["r9"], [article(599)]))
    assert compact(index_dir, CONFIG, "c-2", everything=True)  # the leftover stays replaced, and goes
    index = LakeIndex.open(index_dir, CONFIG)
    assert len(index) == 9 and {s.name for s in index.segments} == {"c-2"}
    assert not any(index_dir.glob("p*/run-0"))


def test_folding_old_and_new_segments_keeps_every_answer(format_1_index: Path) -> None:
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
    assert migrate(format_1_index, CONFIG) == ["run-2", "run-1"]  # smallest first
    assert compact(format_1_index, CONFIG, "compact-1", everything=True)
    metas = part_metas(format_1_index)
    assert {m["format"] for m in metas.values()} == {3}
    assert {(m["index_params"]["bands"], m["index_params"]["rows"]) for m in metas.values()} == {(64, 2)}  # type: ignore[index]
    index = LakeIndex.open(format_1_index, CONFIG)
    after = resolve(probe, index, CONFIG)
    assert as_dict(probe, after) == as_dict(probe, before)
    assert after.dup_kind == before.dup_kind == ["near", None, "contained", "near"]
    # An old entry's unknown set size never makes it a container, before or after folding.
    assert as_dict(probe, after)["excerpt-old"] == ("excerpt-old", False, 1.0)
    known = index.decisions_of(entries)
    assert known.dup_cluster == known_before.dup_cluster and known.dup_kind == known_before.dup_kind
    assert np.array_equal(known.dup_containment, known_before.dup_containment, equal_nan=True)
    assert np.isnan(known.dup_containment[:7]).all() and known.dup_containment[7] == 1.0

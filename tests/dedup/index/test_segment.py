"""Index segments on disk: which are read, damaged or incompatible ones refused, format-1 segments read as written,
the partitions fixed when the index is created."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flows.dedup import CorruptIndexError, DedupConfig, IncompatibleIndexError, LakeIndex, index_config
from tests.dedup.helpers import (
    CONFIG,
    FIRST,
    FORMAT_1_EXPECTED,
    article,
    as_dict,
    batch_of,
    edit,
    part_metas,
    run,
    segment_metas,
)


def test_incompatible_index_is_refused_with_a_way_out(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    with pytest.raises(IncompatibleIndexError, match=r"num_perm.*move that directory aside"):
        LakeIndex.open(index_dir, DedupConfig(num_perm=64, bands=16, rows=4))
    # A threshold change does not touch the index: allowed.
    assert len(LakeIndex.open(index_dir, DedupConfig(threshold=0.9))) == 4


def test_only_published_complete_segments_are_read(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    for partition in ("p0000", "segments"):
        (index_dir / partition / "_tmp-run-2").mkdir(parents=True)
        (index_dir / partition / ".hidden").mkdir()
    assert len(LakeIndex.open(index_dir, CONFIG)) == 4
    (index_dir / "p0000" / "broken").mkdir()
    with pytest.raises(CorruptIndexError, match=r"no meta\.json"):
        LakeIndex.open(index_dir, CONFIG)


def _with_entries(index_dir: Path, name: str) -> Path:
    return next(p for p in sorted(index_dir.glob(f"p*/{name}")) if json.loads((p / "meta.json").read_text())["count"])


def test_a_damaged_segment_is_reported_not_misread(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    sigs = _with_entries(index_dir, "run-1") / "signatures.npy"
    sigs.write_bytes(sigs.read_bytes()[:200])  # truncated copy
    with pytest.raises(CorruptIndexError, match=r"run-1.*re-ingest"):
        LakeIndex.open(index_dir, CONFIG)


def test_an_index_of_an_unknown_format_is_refused_with_a_way_out(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    meta_path = _with_entries(index_dir, "run-1") / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format": 4}))  # written by a later siftlake
    with pytest.raises(IncompatibleIndexError, match=r"format 4.*reads formats 1, 2, 3.*move that directory aside"):
        LakeIndex.open(index_dir, CONFIG)


def test_the_partitions_are_recorded_and_another_number_refused_with_what_to_do(index_dir: Path) -> None:
    run(index_dir, "run-1", FIRST)
    assert json.loads((index_dir / "index.json").read_text()) == {
        "format": 3, "partitions": 16, "index_params": CONFIG.index_params()}
    with pytest.raises(IncompatibleIndexError, match=r"has 16 partitions.*dedup.partitions = 64.*"
                                                     r"Run with dedup.partitions: 16"):
        LakeIndex.open(index_dir, DedupConfig(partitions=64))
    (index_dir / "index.json").unlink()  # a lost index.json: each segment records the partitions too
    with pytest.raises(IncompatibleIndexError, match=r"Run with dedup.partitions: 16"):
        LakeIndex.open(index_dir, DedupConfig(partitions=4))
    # Threshold and banding are not fixed: the index opens, and answers, with other ones.
    assert len(LakeIndex.open(index_dir, DedupConfig(threshold=0.8, bands=32, rows=4))) == 4
    # What an index was built with (forget opens it so), from its segments when index.json is gone.
    assert index_config(index_dir) == CONFIG and index_config(index_dir.parent / "none") is None


_FORMAT_1_PROBE = {
    "p-near-a1": edit(article(1), 9),
    "p-near-a2": edit(article(1), 5) + " update",
    "p-same-b1": article(2),
    "p-near-d2": edit(article(4, 500), 7),
    "p-excerpt-c1": " ".join(article(3).split()[:150]),
    "p-new": article(9),
}


def test_a_lake_indexed_before_containment_dedup_gives_the_answers_it_gave_then(format_1_index: Path) -> None:
    metas = segment_metas(format_1_index)
    assert {m["format"] for m in metas.values()} == {1}
    assert {(m["index_params"]["bands"], m["index_params"]["rows"]) for m in metas.values()} == {(32, 4)}  # type: ignore[index]
    assert (CONFIG.bands, CONFIG.rows) != (32, 4)  # the upgrade changed the default banding too
    probe = batch_of(list(_FORMAT_1_PROBE), list(_FORMAT_1_PROBE.values()))
    decisions, written = run(format_1_index, "run-3", probe)
    got = as_dict(probe, decisions)
    assert got == {doc: (c, dup, round(sim, 6)) for doc, (c, dup, sim) in FORMAT_1_EXPECTED["probe"].items()}
    # Without content hashes an identical copy of an old entry is "near" at similarity 1.0; without set
    # sizes nothing is contained in one (the excerpt of c1 is kept, as before).
    kinds = dict(zip(probe.doc_ids, decisions.dup_kind, strict=True))
    assert kinds == {"p-near-a1": "near", "p-near-a2": "near", "p-same-b1": "near", "p-near-d2": "near",
                     "p-excerpt-c1": None, "p-new": None}
    # The old entries read back as they were written, their kind and containment unknown.
    known = LakeIndex.open(format_1_index, CONFIG).decisions_of(list(FORMAT_1_EXPECTED["entries"]))
    assert known.found.all()
    assert [[c, bool(d), float(s)] for c, d, s in zip(known.dup_cluster, known.is_duplicate, known.dup_similarity,
                                                      strict=True)] == list(FORMAT_1_EXPECTED["entries"].values())
    assert known.dup_kind == [None] * 7 and np.isnan(known.dup_containment).all()
    # The new run's segments are format 3 with today's banding, and both kinds of segment answer later runs.
    new = {k: m for k, m in part_metas(format_1_index).items() if k.endswith("/run-3")}
    assert written == 6 and {m["format"] for m in new.values()} == {3}
    later = batch_of(["l-old", "l-new"], [edit(article(2), 21), " ".join(article(9).split()[:120])])
    again, _ = run(format_1_index, "run-4", later)
    assert again.dup_cluster == ["b1", "p-new"] and again.dup_kind == ["near", "contained"]

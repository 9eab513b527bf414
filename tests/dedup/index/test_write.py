"""Writing a run's segments into the partitions and publishing them with one rename each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from flows.dedup import DedupConfig, LakeIndex, publish_segment, resolve
from flows.dedup.fingerprint import band_keys
from flows.dedup.index import staged_moves
from flows.dedup.index.files import doc_id_keys
from tests.dedup.helpers import CONFIG, FIRST


def test_a_runs_segments_are_staged_per_partition_and_published(index_dir: Path, tmp_path: Path) -> None:
    staging = tmp_path / "staging" / "run-7"
    index = LakeIndex.open(index_dir, CONFIG)
    assert index.write_segment(staging / "_index", "run-7", FIRST, resolve(FIRST, index, CONFIG)) == 4
    moves = staged_moves(staging, "_index", "run-7")
    assert moves[0] == "_index/index.json" and all(m.endswith("/run-7") for m in moves[1:])  # a new index
    published = publish_segment(index_dir, staging / "_index", "run-7")
    assert [f"_index/{p.parent.name}/{p.name}" for p in published] == moves[1:]
    assert json.loads((index_dir / "index.json").read_text())["partitions"] == CONFIG.partitions
    metas = [json.loads((p / "meta.json").read_text()) for p in published]
    assert sum(m["count"] for m in metas) == 4 and sum(m["rows"] for m in metas) == 4 * CONFIG.bands
    assert {m["format"] for m in metas} == {3} and all(m["partition"] == int(p.parent.name[1:])
                                                       for m, p in zip(metas, published, strict=True))


def test_band_rows_land_in_the_partition_of_their_key_and_entries_in_their_home(index_dir: Path,
                                                                               tmp_path: Path) -> None:
    config = DedupConfig(partitions=5)  # not a power of two: k % P all the same
    index = LakeIndex.open(index_dir, config)
    index.write_segment(tmp_path / "st", "run-1", FIRST, resolve(FIRST, index, config))
    publish_segment(index_dir, tmp_path / "st", "run-1")
    keys, refs, ids = [], [], []
    for folder in sorted(index_dir.glob("p*/run-1")):
        partition = int(folder.parent.name[1:])
        k, r, i = (np.load(folder / f"{n}.npy") for n in ("keys", "refs", "id_keys"))
        assert (k % 5 == partition).all() and (i % 5 == partition).all()
        assert np.all(np.diff(k.astype(np.float64)) >= 0) and np.all(np.diff(i.astype(np.float64)) >= 0)
        keys.append(k)
        refs.append(r)
        ids.append(i)
    expected = sorted(zip(band_keys(FIRST.signatures, config).reshape(-1).tolist(),
                          np.tile(doc_id_keys(FIRST.doc_ids), config.bands).tolist(), strict=True))
    assert sorted(zip(np.concatenate(keys).tolist(), np.concatenate(refs).tolist(), strict=True)) == expected
    assert sorted(np.concatenate(ids).tolist()) == sorted(doc_id_keys(FIRST.doc_ids).tolist())

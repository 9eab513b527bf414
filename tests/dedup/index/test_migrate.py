"""Lakes indexed in format 2 (before the partitions): read as they are, folded into the partitions by compaction or
all at once, with the same answers before and after; an interrupted migration resumes."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from flows import cli
from flows.dedup import LakeIndex, migrate, resolve
from flows.dedup.index import migration, segment_count
from flows.dedup.maintenance import compact_if_needed
from flows.storage import Store
from tests.dedup.helpers import CONFIG, batch_of, part_metas, segment_metas
from tests.support.legacy_index import legacy_run
from tests.support.paths import REPO

FORMAT_2 = REPO / "tests" / "data" / "index_format2"
EXPECTED = json.loads((FORMAT_2 / "expected.json").read_text())


def _fixture_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_format_2", FORMAT_2 / "make_fixture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIXTURE = _fixture_script()


@pytest.fixture
def format_2_index(tmp_path: Path) -> Path:
    index_dir = tmp_path / "lake" / "_index"
    shutil.copytree(FORMAT_2 / "_index", index_dir)
    return index_dir


def answers(index_dir: Path) -> dict[str, Any]:
    """What the fixture recorded, asked of the index as it is now."""
    index = LakeIndex.open(index_dir, CONFIG)
    probe = batch_of(list(FIXTURE.PROBE), list(FIXTURE.PROBE.values()))
    got = resolve(probe, index, CONFIG)
    near, containing = index.query(probe.signatures, probe.sizes)
    known = index.decisions_of(list(EXPECTED["entries"]))
    return {
        "probe": {doc: [got.dup_cluster[i], bool(got.is_duplicate[i]), float(got.dup_similarity[i]), got.dup_kind[i],
                        float(got.dup_containment[i])] for i, doc in enumerate(probe.doc_ids)},
        "near": [[int(q), c, float(s)] for q, c, s in zip(near.query_rows, near.dup_cluster, near.similarity,
                                                          strict=True)],
        "containing": [[int(q), c, float(s)] for q, c, s in zip(containing.query_rows, containing.dup_cluster,
                                                               containing.similarity, strict=True)],
        "entries": {doc: [known.dup_cluster[i], bool(known.is_duplicate[i]), float(known.dup_similarity[i]),
                          known.dup_kind[i], None if np.isnan(known.dup_containment[i]) else
                          float(known.dup_containment[i])] for i, doc in enumerate(EXPECTED["entries"])},
    }


def expected() -> dict[str, Any]:
    return {k: EXPECTED[k] for k in ("probe", "near", "containing", "entries")}


def test_the_format_2_writer_writes_what_the_old_code_wrote(tmp_path: Path) -> None:
    index_dir = tmp_path / "_index"
    shutil.copytree(FORMAT_2 / "_index" / "segments" / "compact-1", index_dir / "segments" / "compact-1")
    ids, texts, quality = FIXTURE.RUNS["run-3"]
    legacy_run(index_dir, "run-3", batch_of(ids, texts, quality), CONFIG)
    for path in sorted((FORMAT_2 / "_index" / "segments" / "run-3").iterdir()):
        assert (index_dir / "segments" / "run-3" / path.name).read_bytes() == path.read_bytes(), path.name


def test_a_format_2_lake_gives_the_answers_it_gave_then(format_2_index: Path) -> None:
    assert answers(format_2_index) == expected()
    assert len(LakeIndex.open(format_2_index, CONFIG)) == 11


def test_migration_folds_every_legacy_segment_and_keeps_every_answer(format_2_index: Path) -> None:
    assert migrate(format_2_index, CONFIG) == ["run-3", "compact-1"]  # smallest first
    assert segment_metas(format_2_index) == {}
    metas = part_metas(format_2_index)
    assert {m["format"] for m in metas.values()} == {3}
    assert {k.split("/")[1] for k in metas} == {"legacy-run-3", "legacy-compact-1"}
    assert json.loads((format_2_index / "index.json").read_text())["partitions"] == CONFIG.partitions
    assert len(LakeIndex.open(format_2_index, CONFIG)) == 11
    assert answers(format_2_index) == expected()


def test_an_interrupted_migration_resumes_and_never_changes_an_answer(format_2_index: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*_: object) -> None:
        raise RuntimeError("killed")

    with monkeypatch.context() as patched:
        patched.setattr(migration, "_remove_legacy", crash)
        with pytest.raises(RuntimeError):
            migrate(format_2_index, CONFIG)
    copies = sorted(format_2_index.glob("p*/legacy-run-3"))
    assert copies and (format_2_index / "segments" / "run-3").is_dir()
    for copy in copies[: len(copies) // 2]:  # killed while renaming the copies into place
        shutil.rmtree(copy)
    # Meanwhile a reader sees the old segment and some of its copies: the same entries twice, same answers.
    assert answers(format_2_index) == expected()
    assert migrate(format_2_index, CONFIG) == ["run-3", "compact-1"]
    assert segment_metas(format_2_index) == {} and len(LakeIndex.open(format_2_index, CONFIG)) == 11
    assert sorted(format_2_index.glob("p*/legacy-run-3")) == copies
    assert answers(format_2_index) == expected()


def test_compaction_after_a_run_folds_the_legacy_segments(format_2_index: Path) -> None:
    lake = Store(str(format_2_index.parent))
    summary = compact_if_needed(lake, format_2_index, CONFIG, "run-9")
    assert summary is not None and "folded 2" in summary
    assert segment_metas(format_2_index) == {} and segment_count(format_2_index) == len(part_metas(format_2_index))
    assert answers(format_2_index) == expected()


def test_the_cli_migrates_a_lake_and_refuses_other_partitions(format_2_index: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    lake = str(format_2_index.parent)
    assert cli.main(["index", "migrate", "--lake", lake, "--partitions", "4"]) == 0
    done = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert done["folded"] == ["run-3", "compact-1"] and done["partitions"] == 4
    assert {int(k[1:5]) for k in part_metas(format_2_index)} <= set(range(4))
    assert cli.main(["index", "migrate", "--lake", lake, "--partitions", "8"]) == 1
    assert "Run with dedup.partitions: 4" in capsys.readouterr().err
    assert cli.main(["index", "migrate", "--lake", lake]) == 0  # nothing left to fold: a no-op
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["folded"] == []

"""The partitioned index answers as the index of format 2 did, whatever the number of partitions: the same best
matches, the same decisions, run after run; forget takes an entry out, band rows and all."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.dedup import DedupBatch, DedupConfig, EntryChange, LakeIndex, publish_segment, resolve, rewrite_entries
from flows.dedup.index.files import doc_id_keys
from tests.dedup.helpers import article, as_dict, batch_of, edit, run
from tests.support.legacy_index import legacy_run

PARTITIONS = (1, 16, 64)


@st.composite
def corpora(draw: st.DrawFn) -> tuple[list[DedupBatch], DedupBatch]:
    """Runs of a lake and a probe: families of near-copies, exact copies, excerpts and loose rewrites."""
    texts: list[str] = []
    for family in range(draw(st.integers(2, 4))):
        base = article(draw(st.integers(0, 10**6)), draw(st.integers(60, 320)))
        texts.append(base)
        for variant in range(draw(st.integers(1, 5))):
            kind = draw(st.sampled_from(["copy", "light", "heavy", "excerpt"]))
            words = base.split()
            if kind == "excerpt":
                texts.append(" ".join(words[: max(50, int(len(words) * draw(st.floats(0.3, 0.8))))]))
            else:
                share = {"copy": 0.0, "light": 0.03, "heavy": 0.25}[kind]
                texts.append(edit(base, 1000 * family + variant, share) if share else base)
    texts += [article(draw(st.integers(0, 10**6)), 120) for _ in range(draw(st.integers(0, 3)))]
    order = draw(st.permutations(range(len(texts))))
    probe_count = max(1, len(texts) // 4)
    cuts = sorted(draw(st.lists(st.integers(1, len(texts) - probe_count), max_size=2, unique=True)))
    lake_rows, probe_rows = order[probe_count:], order[:probe_count]
    quality = [draw(st.floats(0.0, 1.0)) for _ in texts]
    runs = []
    for lo, hi in zip([0, *cuts], [*cuts, len(lake_rows)], strict=True):
        rows = lake_rows[lo:hi]
        if rows:
            runs.append(batch_of([f"d{r:03d}" for r in rows], [texts[r] for r in rows], [quality[r] for r in rows]))
    probe = batch_of([f"q{r:03d}" for r in probe_rows], [edit(texts[r], 7 + r, 0.02) for r in probe_rows])
    return runs, probe


def outcome(index_dir: Path, config: DedupConfig, decisions: list[Any], probe: DedupBatch) -> dict[str, Any]:
    index = LakeIndex.open(index_dir, config)
    near, inside = index.query(probe.signatures, probe.sizes)
    got = resolve(probe, index, config)
    return {
        "runs": decisions,
        "near": (near.query_rows.tolist(), near.dup_cluster, near.similarity.tolist()),
        "containing": (inside.query_rows.tolist(), inside.dup_cluster, inside.similarity.tolist()),
        "probe": (as_dict(probe, got), got.dup_kind),
        "entries": len(index),
    }


@settings(max_examples=12, deadline=None)
@given(corpora())
def test_every_number_of_partitions_answers_as_the_format_2_index_did(corpus: tuple[list[DedupBatch],
                                                                                   DedupBatch]) -> None:
    runs, probe = corpus
    with tempfile.TemporaryDirectory() as tmp:
        legacy_dir = Path(tmp) / "legacy" / "_index"
        config = DedupConfig()
        decisions = []
        for number, batch in enumerate(runs):
            d = legacy_run(legacy_dir, f"run-{number}", batch, config)
            decisions.append((as_dict(batch, d), d.dup_kind))
        reference = outcome(legacy_dir, config, decisions, probe)
        for partitions in PARTITIONS:
            config = DedupConfig(partitions=partitions)
            index_dir = Path(tmp) / f"p{partitions}" / "_index"
            decisions = []
            for number, batch in enumerate(runs):
                d, _ = run(index_dir, f"run-{number}", batch, config)
                decisions.append((as_dict(batch, d), d.dup_kind))
            assert outcome(index_dir, config, decisions, probe) == reference, partitions


def test_a_64_bit_doc_id_key_collision_never_returns_a_wrong_entry(tmp_path: Path,
                                                                   monkeypatch: Any) -> None:
    # Two doc_ids with the same key: each must come back as itself, and both be candidates of a query.
    colliding = {"a-first": 7, "b-second": 7}

    def keys(doc_ids: Any) -> np.ndarray:
        return np.array([colliding.get(d if isinstance(d, str) else bytes(d).decode(), 11 + i)
                         for i, d in enumerate(doc_ids)], dtype=np.uint64)

    for module in ("flows.dedup.index.files", "flows.dedup.index.lake_index", "flows.dedup.index.write",
                   "flows.dedup.index.rewrite"):
        monkeypatch.setattr(f"{module}.doc_id_keys", keys)
    config = DedupConfig(partitions=16)
    base = article(31)
    batch = batch_of(["a-first", "b-second"], [base, edit(base, 3, 0.3)], [0.9, 0.1])
    index_dir = tmp_path / "_index"
    index = LakeIndex.open(index_dir, config)
    decisions = resolve(batch, index, config)
    assert index.write_segment(tmp_path / "st", "run-1", batch, decisions) == 2
    publish_segment(index_dir, tmp_path / "st", "run-1")
    index = LakeIndex.open(index_dir, config)
    known = index.decisions_of(["b-second", "a-first"])
    assert known.found.all() and known.dup_similarity[1] == 1.0 and not known.is_duplicate[1]
    found, sigs = index.signatures_of(["b-second", "a-first"])
    assert found.all() and np.array_equal(sigs, batch.signatures[::-1])
    probe = batch_of(["q"], [edit(base, 3, 0.3)])
    near, _ = index.query(probe.signatures, probe.sizes)
    assert near.doc_ids == ["b-second"] and near.similarity[0] == 1.0


def test_forget_takes_an_entry_and_its_band_rows_out_of_every_partition(tmp_path: Path) -> None:
    config = DedupConfig(partitions=16)
    index_dir = tmp_path / "_index"
    gone, stays = article(41), article(42)
    run(index_dir, "run-1", batch_of(["gone", "stays", "copy"], [gone, stays, edit(stays, 5)], [0.9, 0.9, 0.1]),
        config)
    run(index_dir, "run-2", batch_of(["other"], [article(43)]), config)
    change = EntryChange("copy", False, 1.0, None, 1.0)
    rewrite = rewrite_entries(index_dir, tmp_path / "st", "forget-1", config, {"gone", "stays"}, {"copy": change})
    assert rewrite.removed == 2 and rewrite.changed == 1 and rewrite.moves
    assert all(r.endswith("/run-1") for r in rewrite.replaced)  # run-2 held neither the entries nor band rows
    for folder in rewrite.replaced:  # the commit: new segments in, replaced ones out
        (index_dir / folder).rename(tmp_path / f"old-{folder.replace('/', '-')}")
    publish_segment(index_dir, tmp_path / "st", "forget-1")
    index = LakeIndex.open(index_dir, config)
    assert len(index) == 2 and index.decisions_of(["gone", "copy"]).dup_cluster == ["", "copy"]
    refs = set(doc_id_keys(["gone", "stays"]).tolist())
    assert not any(refs & set(np.load(p / "refs.npy").tolist()) for p in index_dir.glob("p*/*"))
    probe = batch_of(["q1", "q2"], [edit(gone, 9), edit(stays, 9)])
    near, _ = index.query(probe.signatures, probe.sizes)
    assert near.doc_ids == ["copy"] and near.query_rows.tolist() == [1]


def test_a_dangling_band_row_yields_no_candidate(tmp_path: Path) -> None:
    # An entry whose home segment is gone while its band rows stay (a commit cut short, say): nothing matches it.
    config = DedupConfig(partitions=16)
    index_dir = tmp_path / "_index"
    text = article(51)
    run(index_dir, "run-1", batch_of(["lost"], [text]), config)
    home = int(doc_id_keys(["lost"])[0] % np.uint64(16))
    (index_dir / f"p{home:04d}" / "run-1").rename(tmp_path / "moved")
    index = LakeIndex.open(index_dir, config)
    assert len(index) == 0
    near, inside = index.query(*(lambda b: (b.signatures, b.sizes))(batch_of(["q"], [text])))
    assert near.doc_ids == [] and inside.doc_ids == []

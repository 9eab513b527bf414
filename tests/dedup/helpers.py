"""Shared builders for the dedup tests: synthetic articles, light edits, batches, one ingest run against
an index folder, a small universe of near-copies and excerpts, and the format-1 index fixture's answers."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from flows.dedup import (
    DedupBatch,
    DedupConfig,
    DedupDecisions,
    LakeIndex,
    content_hash,
    fingerprints,
    publish_segment,
    resolve,
)
from tests.support.paths import REPO

CONFIG = DedupConfig()
VOCAB = [f"w{i}" for i in range(5000)]


def article(seed: int, words: int = 300) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCAB) for _ in range(words))


def edit(text: str, seed: int, share: float = 0.01) -> str:
    """Replace ``share`` of the words: a light revision."""
    rng = random.Random(seed)
    words = text.split()
    for i in rng.sample(range(len(words)), max(1, int(len(words) * share))):
        words[i] = "edited"
    return " ".join(words)


def batch_of(ids: list[str], texts: list[str], quality: list[float] | None = None) -> DedupBatch:
    sigs, sizes = fingerprints(texts, CONFIG)
    return DedupBatch(
        doc_ids=ids,
        content_hashes=[content_hash(t) for t in texts],
        signatures=sigs,
        quality=np.array(quality if quality is not None else [0.5] * len(ids), dtype=float),
        lengths=np.array([len(t) for t in texts]),
        sizes=sizes,
    )


def run(index_dir: Path, name: str, batch: DedupBatch, config: DedupConfig = CONFIG) -> tuple[DedupDecisions, int]:
    """One ingest run as the pipeline does it: open, resolve, write a segment, publish it."""
    index = LakeIndex.open(index_dir, config)
    decisions = resolve(batch, index, config)
    staging = index_dir.parent / "_staging" / name / "_index"
    written = index.write_segment(staging, name, batch, decisions)
    if written:
        publish_segment(index_dir, staging, name)
    else:
        assert not staging.exists()  # nothing new: nothing to publish
    return decisions, written


def as_dict(batch: DedupBatch, d: DedupDecisions) -> dict[str, tuple[str, bool, float]]:
    return {
        doc: (d.dup_cluster[i], bool(d.is_duplicate[i]), round(float(d.dup_similarity[i]), 6))
        for i, doc in enumerate(batch.doc_ids)
    }


FIRST = batch_of(
    ["a1", "a2", "b1", "c1"],
    [article(1), edit(article(1), 5), article(2), article(3)],
    [0.9, 0.5, 0.5, 0.5],
)


# A small universe of documents: three families of near-copies, excerpts of them (the first 35-60%
# of an article, or of an excerpt), a mash-up of two families' second halves, and singletons.
_FAMILY = [article(100 + f) for f in range(3)]
UNIVERSE = [
    (f"d{f}{v}", edit(_FAMILY[f], v, 0.01 * v) if v else _FAMILY[f], (v * 37 % 10) / 10)
    for f in range(3)
    for v in range(4)
] + [(f"s{i}", article(200 + i), 0.5) for i in range(4)] + [
    (f"x{f}", " ".join(_FAMILY[f].split()[: 105 + 20 * f]), 1.0) for f in range(3)
] + [
    ("xx0", " ".join(_FAMILY[0].split()[:70]), 1.0),  # an excerpt of the excerpt x0
    ("m01", " ".join(_FAMILY[0].split()[150:] + _FAMILY[1].split()[150:]), 0.5),
]
UNIVERSE_SIGS, UNIVERSE_SIZES = fingerprints([t for _, t, _ in UNIVERSE], CONFIG)


# A lake index written by siftlake before containment dedup (format 1, banding 32 x 4, the defaults
# then), with the answers that code gave: see tests/data/index_format1/make_fixture.py.
FORMAT_1 = REPO / "tests" / "data" / "index_format1"
FORMAT_1_EXPECTED = json.loads((FORMAT_1 / "expected.json").read_text())


def segment_metas(index_dir: Path) -> dict[str, dict[str, object]]:
    """The metas of the older-format segments (``segments/<name>``), by name."""
    folder = index_dir / "segments"
    return {p.name: json.loads((p / "meta.json").read_text()) for p in sorted(folder.iterdir())} if folder.is_dir() \
        else {}


def part_metas(index_dir: Path) -> dict[str, dict[str, object]]:
    """The metas of the partitions' segments, by ``pNNNN/<name>``."""
    return {f"{p.parent.name}/{p.name}": json.loads((p / "meta.json").read_text())
            for p in sorted(index_dir.glob("p[0-9][0-9][0-9][0-9]/*")) if not p.name.startswith((".", "_"))}

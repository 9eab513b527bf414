"""The duplicate graph: candidates and their verdicts split by band-key partition decide as one process does."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.dedup import DedupDecisions, LakeIndex, band_keys, resolve
from flows.dedup.graph import Links, band_rows, distinct_nodes, link_candidates, partition_of
from flows.dedup.records import LakeMatches
from flows.dedup.resolve import decide_new
from tests.dedup.helpers import CONFIG, article, batch_of, edit

NO_LAKE = LakeIndex(Path("/nonexistent"), CONFIG, [])


def _no_matches() -> LakeMatches:
    return LakeMatches(np.empty(0, np.int64), [], [], np.empty(0))


def partitioned(batch_ids: list[str], texts: list[str], quality: list[float], partitions: int) -> DedupDecisions:
    """Decisions when each partition of the band keys is linked by itself (its own union-find, as a
    partition task would) and only the links meet."""
    batch = batch_of(batch_ids, texts, quality)
    nodes = distinct_nodes(batch.signatures, batch.sizes)
    keys, members = band_rows(band_keys(nodes.signatures, CONFIG))
    where = partition_of(keys, partitions)
    links = Links()
    for part in range(partitions):
        mine = where == part
        found = link_candidates(nodes, [(keys[mine], members[mine])], CONFIG)
        links.near += found.near
        links.offers += found.offers
        links.estimates += found.estimates
    out = DedupDecisions.all_kept(batch.doc_ids)
    decide_new(batch, np.arange(len(batch)), nodes, links, (_no_matches(), _no_matches()), NO_LAKE, out)
    return out


def corpus(families: list[list[str]], seed: int) -> tuple[list[str], list[str], list[float]]:
    """Articles with light and heavy edits, exact copies and excerpts (contained), shuffled."""
    texts = []
    for f, steps in enumerate(families):
        base = article(700 + f, words=400)
        for step, what in enumerate(steps):
            if what == "copy":
                texts.append(base)
            elif what == "excerpt":
                texts.append(" ".join(base.split()[: 120 + 40 * step]))
            else:
                texts.append(edit(base, 100 * f + step, {"light": 0.02, "heavy": 0.35}[what]))
    rng = random.Random(seed)
    rng.shuffle(texts)
    quality = [rng.choice([0.2, 0.5, 0.5, 0.9]) for _ in texts]
    return [f"d{rng.randrange(10**6):06d}-{i}" for i in range(len(texts))], texts, quality


def fields(d: DedupDecisions) -> list[tuple[object, ...]]:
    return list(zip(d.dup_cluster, d.is_duplicate.tolist(), np.round(d.dup_similarity, 9).tolist(), d.dup_kind,
                    np.round(d.dup_containment, 9).tolist(), strict=True))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["copy", "light", "heavy", "excerpt"]), min_size=1, max_size=5),
                min_size=1, max_size=4),
       st.sampled_from([1, 16, 64]), st.integers(0, 1000))
def test_partitions_linked_apart_decide_as_one_process(families: list[list[str]], partitions: int,
                                                        seed: int) -> None:
    ids, texts, quality = corpus(families, seed)
    whole = resolve(batch_of(ids, texts, quality), NO_LAKE, CONFIG)
    assert fields(partitioned(ids, texts, quality, partitions)) == fields(whole)


def test_the_decisions_do_not_depend_on_row_order() -> None:
    ids, texts, quality = corpus([["copy", "light", "excerpt"], ["heavy", "copy"], ["light", "light"]], seed=5)
    first = dict(zip(ids, fields(resolve(batch_of(ids, texts, quality), NO_LAKE, CONFIG)), strict=True))
    order = list(reversed(range(len(ids))))
    again = resolve(batch_of([ids[i] for i in order], [texts[i] for i in order], [quality[i] for i in order]),
                    NO_LAKE, CONFIG)
    assert dict(zip([ids[i] for i in order], fields(again), strict=True)) == first
    # family 1: the copy, its light edit and its excerpt are one cluster; family 3: two light edits
    assert sum(d[1] for d in first.values()) == 3


def test_exact_copies_are_one_node() -> None:
    batch = batch_of(["a", "b", "c"], [article(1), article(1), article(2)])
    nodes = distinct_nodes(batch.signatures, batch.sizes)
    assert len(nodes) == 2 and nodes.of_row[0] == nodes.of_row[1] != nodes.of_row[2]

"""The band keys' filter and fence: the filter never rules out a key a segment holds and rules out almost every
other one; the fence finds each key's run as a binary search does; neither changes an answer of the index (written
runs, merged segments, older segments without them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.dedup import LakeIndex, compact, resolve
from flows.dedup.index import band_lookup
from flows.dedup.index.column import Column
from tests.dedup.helpers import CONFIG, article, as_dict, batch_of, edit, run


def _column(tmp: Path, values: np.ndarray, name: str = "filter") -> Column:
    np.save(tmp / f"{name}.npy", values)
    return Column.open(tmp / f"{name}.npy")


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=300), st.integers(1, 64))
def test_a_key_the_filter_was_built_with_always_passes(tmp_path_factory: pytest.TempPathFactory, keys: list[int],
                                                       partitions: int) -> None:
    """Also keys of one partition (their low bits alike), and needles few or many against the filter's words."""
    held = np.array(keys, dtype=np.uint64) // np.uint64(partitions) * np.uint64(partitions)
    tmp = tmp_path_factory.mktemp("filter")
    column = _column(tmp, band_lookup.build_filter(held))
    assert band_lookup.may_hold(column, band_lookup.Probe.of(np.sort(held))).all()
    assert band_lookup.may_hold(column, band_lookup.Probe.of(np.sort(held)[:1])).all()


def test_the_filter_rules_out_about_98_percent_of_absent_keys(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    held = rng.integers(0, 2**63, 200_000, dtype=np.uint64) // np.uint64(64) * np.uint64(64) + np.uint64(3)
    absent = rng.integers(0, 2**63, 200_000, dtype=np.uint64) // np.uint64(64) * np.uint64(64) + np.uint64(3)
    absent = np.setdiff1d(absent, held)
    column = _column(tmp_path, band_lookup.build_filter(held))
    passed = band_lookup.may_hold(column, band_lookup.Probe.of(absent)).mean()
    assert 0.005 < passed < 0.03, passed


@given(st.lists(st.integers(0, 150), max_size=3000), st.lists(st.integers(-5, 160), min_size=1, max_size=400))
def test_the_fence_finds_each_keys_run_as_a_binary_search_does(tmp_path_factory: pytest.TempPathFactory,
                                                                values: list[int], probes: list[int]) -> None:
    """Keys with long runs (crossing fence keys), needles present and absent, before and after every key."""
    keys = np.sort(np.array(values, dtype=np.uint64) * np.uint64(1000) + np.uint64(10))
    needles = np.sort(np.array(probes, dtype=np.int64) * 1000 + 10).clip(0).astype(np.uint64)
    column = _column(tmp_path_factory.mktemp("fence"), keys, "keys")
    lo, count = band_lookup.fenced_ranges(column, band_lookup.fence_of(keys), needles)
    left, right = np.searchsorted(keys, needles, "left"), np.searchsorted(keys, needles, "right")
    assert np.array_equal(count, right - left)
    assert np.array_equal(lo[count > 0], left[count > 0])
    cut = len(keys) // 3  # a merge takes the fence of its keys a chunk at a time
    chunks = [band_lookup.fence_of(keys[:cut]), band_lookup.fence_of(keys[cut:], cut)]
    assert np.array_equal(np.concatenate(chunks), band_lookup.fence_of(keys))


def _lookups(index_dir: Path) -> list[tuple[Path, np.ndarray, np.ndarray, np.ndarray]]:
    return [(meta.parent, np.load(meta.parent / f"{band_lookup.FILTER_FILE}.npy"),
             np.load(meta.parent / f"{band_lookup.FENCE_FILE}.npy"), np.load(meta.parent / "keys.npy"))
            for meta in sorted(index_dir.glob("p*/*/meta.json")) if json.loads(meta.read_text())["rows"]]


def test_merged_segments_hold_the_filter_and_fence_of_their_keys_and_answer_as_without_them(tmp_path: Path) -> None:
    index_dir = tmp_path / "_index"
    for number in range(6):
        texts = [edit(article(700 + (number + j) % 4), number * 7 + j, 0.02) for j in range(3)]
        run(index_dir, f"run-{number}", batch_of([f"r{number}-{j}" for j in range(3)], texts))
    probe = batch_of([f"q{i}" for i in range(8)], [edit(article(700 + i % 5), 90 + i, 0.02) for i in range(8)])
    with_filters = as_dict(probe, resolve(probe, LakeIndex.open(index_dir, CONFIG), CONFIG))
    assert compact(index_dir, CONFIG, "compact-1", everything=True)
    written = _lookups(index_dir)
    assert written and {path.name for path, *_ in written} == {"compact-1"}
    for _, stored_filter, fence, keys in written:  # a merge adds its keys a chunk at a time
        assert np.array_equal(stored_filter, band_lookup.build_filter(keys))
        assert np.array_equal(fence, keys[:: band_lookup.FENCE_STEP])
    assert as_dict(probe, resolve(probe, LakeIndex.open(index_dir, CONFIG), CONFIG)) == with_filters
    for path, *_ in written:  # as a segment written before the filter and fence
        meta = json.loads((path / "meta.json").read_text())
        del meta[band_lookup.META_KEY]
        (path / "meta.json").write_text(json.dumps(meta))
        for name in (band_lookup.FILTER_FILE, band_lookup.FENCE_FILE):
            (path / f"{name}.npy").unlink()
    assert as_dict(probe, resolve(probe, LakeIndex.open(index_dir, CONFIG), CONFIG)) == with_filters
    assert sum(1 for v in with_filters.values() if v[1]) >= 4, "the probe finds lake duplicates"

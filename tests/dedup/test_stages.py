"""A run's dedup as partitioned stages decides exactly as ``resolve`` on the whole run, in a lake or not."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.dedup import DedupBatch, DedupConfig, DedupDecisions, LakeIndex, resolve
from flows.dedup.index import publish_segment
from flows.dedup.index.part import PartSegment
from flows.dedup.join import decide_run
from flows.dedup.matching import StagedKept, kept_partition, match_partition, match_sources, save_matches, save_wanted
from flows.dedup.run_index import save_for_index, unindexed_rows, write_partition
from flows.dedup.stages import link_partition, prepare_shard, save_candidates
from flows.lake.commit import persist
from flows.lake.layout import RunPaths
from flows.storage import Store
from tests.dedup.helpers import CONFIG, article, batch_of, edit, run
from tests.support.servers import S3Server


def texts_of(families: list[list[str]], seed: int) -> list[str]:
    texts = []
    for f, steps in enumerate(families):
        base = article(900 + f, words=300)
        for step, what in enumerate(steps):
            texts.append({"copy": base, "excerpt": " ".join(base.split()[: 100 + 30 * step]),
                          "light": edit(base, 10 * f + step, 0.02), "heavy": edit(base, 10 * f + step, 0.4)}[what])
    random.Random(seed).shuffle(texts)
    return texts


def stage_shards(paths: RunPaths, batch: DedupBatch, cuts: list[int]) -> list[int]:
    """Write the batch as staged shards cut at ``cuts`` (the columns dedup reads)."""
    bounds = [0, *cuts, len(batch)]
    numbers = []
    for number, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        table = pa.table({
            "doc_id": batch.doc_ids[lo:hi], "content_hash": batch.content_hashes[lo:hi],
            "signature": [row.tobytes() for row in batch.signatures[lo:hi]],
            "quality_score": batch.quality[lo:hi], "n_chars": batch.lengths[lo:hi],
            "n_shingles": pa.array(batch.sizes[lo:hi], pa.uint32()),
        })
        paths.shard_file(number).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, paths.shard_file(number))
        numbers.append(number)
    return numbers


def staged_decisions(lake: Path, batch: DedupBatch, cuts: list[int], config: DedupConfig) -> list[tuple[object, ...]]:
    paths = RunPaths(str(lake), f"run-{len(cuts)}-{config.partitions}", "2026-12-03")
    numbers = stage_shards(paths, batch, cuts)
    table = decide_in_stages(paths, numbers, config, LakeIndex.open(lake / "_index", config))
    bounds = np.cumsum([0, *[pq.read_metadata(paths.shard_file(n)).num_rows for n in numbers]])
    out = DedupDecisions.all_kept(batch.doc_ids)
    for row in table.to_pylist():
        at = int(bounds[row["shard"]]) + row["row"]
        for name in ("dup_cluster", "is_duplicate", "dup_similarity", "dup_kind", "dup_containment"):
            getattr(out, name)[at] = row[name]
    return fields(out)


def decide_in_stages(paths: RunPaths, numbers: list[int], config: DedupConfig, index: LakeIndex) -> pa.Table:
    """Every stage up to the decisions, in this process, handing each other staged files as the flow's tasks do;
    each partition stage opens its own partition of the index only, and the decision opens none."""
    for number in numbers:
        prepare_shard(paths, number, config, index)

    def partition(part: int) -> LakeIndex:
        return LakeIndex.open_partitions(index.index_dir, config, [part])

    parts = range(config.partitions)
    linked = [link_partition(paths, part, numbers, config, partition(part)) for part in parts]
    homes = [save_candidates(paths, part, candidates, config.partitions)
             for part, (_, candidates) in enumerate(linked)]
    wanted = [[0] * config.partitions for _ in parts]
    for part in parts:
        if sources := match_sources(homes, part):
            matches = match_partition(paths, part, sources, config, partition(part))
            if matches.num_rows:
                save_matches(paths, part, matches)
                wanted[part] = save_wanted(paths, part, matches, config.partitions)
    kept = [part for part in parts if match_sources(wanted, part)]
    for part in kept:
        kept_partition(paths, part, match_sources(wanted, part), partition(part))
    matched = [part for part in parts if any(wanted[part])]
    # As the flow: a lake the partition tasks cannot search alone (another banding's rows) is read whole.
    banding = (config.bands, config.rows)
    whole = any(s.rows and s.banding != banding for s in index.segments if isinstance(s, PartSegment))
    lookup = index if whole else StagedKept(paths, kept, config)
    return decide_run(paths, numbers, [links for links, _ in linked], config, lookup, matched)


def fields(d: DedupDecisions) -> list[tuple[object, ...]]:
    return list(zip(d.dup_cluster, np.asarray(d.is_duplicate).tolist(), np.round(d.dup_similarity, 9).tolist(),
                    d.dup_kind, np.round(d.dup_containment, 9).tolist(), strict=True))


FAMILIES = st.lists(st.lists(st.sampled_from(["copy", "light", "heavy", "excerpt"]), min_size=1, max_size=4),
                    min_size=1, max_size=4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(FAMILIES, st.sampled_from([1, 16, 64]), st.lists(st.integers(1, 12), max_size=3), st.integers(0, 99),
       st.sampled_from([1, 2, 256]))
def test_partitioned_stages_decide_as_resolve_on_the_whole_run(tmp_path: Path, families: list[list[str]],
                                                               partitions: int, cuts: list[int], seed: int,
                                                               cap: int) -> None:
    """Also with buckets cut short (``max_candidates_per_band`` 1 or 2), copies spread over shards."""
    texts = texts_of(families, seed)
    rng = random.Random(seed)
    batch = batch_of([f"r{seed}-{i}" for i in range(len(texts))], texts,
                     [rng.choice([0.3, 0.5, 0.9]) for _ in texts])
    config = CONFIG.model_copy(update={"partitions": partitions, "max_candidates_per_band": cap})
    lake = tmp_path / f"lake-{seed}-{partitions}-{cap}-{'-'.join(map(str, cuts))}"
    expected = fields(resolve(batch, LakeIndex.open(lake / "_index", config), config))
    assert staged_decisions(lake, batch, sorted({c for c in cuts if c < len(batch)}), config) == expected


def test_against_a_lake_the_stages_decide_as_resolve(tmp_path: Path) -> None:
    """Copies of lake documents join their lake clusters; rows the lake holds keep its decision."""
    old = batch_of(["a", "b", "c"], [article(1), edit(article(1), 2), article(3)], [0.9, 0.5, 0.5])
    texts = [article(1), edit(article(1), 7), " ".join(article(3).split()[:120]), article(4), article(4), article(3)]
    batch = batch_of(["n1", "n2", "n3", "n4", "n5", "c"], texts, [0.5] * 6)
    for partitions in (1, 16):  # a lake's index fixes its partitions: one lake each
        config = CONFIG.model_copy(update={"partitions": partitions})
        lake = tmp_path / f"lake-{partitions}"
        run(lake / "_index", "first", old, config)
        expected = fields(resolve(batch, LakeIndex.open(lake / "_index", config), config))
        assert staged_decisions(lake, batch, [2, 4], config) == expected
    clusters = [e[0] for e in expected]
    assert clusters[:3] == ["a", "a", "c"] and clusters[3] == clusters[4] and clusters[5] == "c"


def test_band_rows_of_an_earlier_banding_are_still_matched(tmp_path: Path) -> None:
    """Partition tasks search the band rows of the run's banding; a lake indexed with another banding (kept
    until compaction) is still searched, by the shard tasks, and the decisions are those of one process."""
    older = CONFIG.model_copy(update={"partitions": 4, "bands": 32, "rows": 4})
    run(tmp_path / "lake" / "_index", "first", batch_of(["a", "b"], [article(1), article(3)]), older)
    config = CONFIG.model_copy(update={"partitions": 4})
    run(tmp_path / "lake" / "_index", "second", batch_of(["c"], [article(5)]), config)
    batch = batch_of(["n1", "n2", "n3"], [edit(article(1), 7, 0.02), article(5), edit(article(3), 9, 0.03)])
    expected = fields(resolve(batch, LakeIndex.open(tmp_path / "lake" / "_index", config), config))
    assert [e[0] for e in expected] == ["a", "c", "b"]
    assert staged_decisions(tmp_path / "lake", batch, [1], config) == expected


def test_partition_tasks_on_another_machine_read_their_slices_from_the_bucket(s3_server: S3Server,
                                                                               tmp_path: Path) -> None:
    """A partition task whose machine lacks the shards' dedup files reads only its slices from the lake's store:
    link tasks the band keys, match tasks the lake candidates and the signatures they name."""
    lake = f"{s3_server.bucket('stages')}/lake"
    options = s3_server.storage_options()
    texts = texts_of([["copy", "light", "excerpt"], ["copy", "copy"], ["heavy"]], seed=3)
    batch = batch_of([f"s{i}" for i in range(len(texts))], texts)
    config = CONFIG.model_copy(update={"partitions": 4})
    run(tmp_path / "_index", "first", batch_of(["old"], [texts[0]]), config)
    index = LakeIndex.open(tmp_path / "_index", config)
    here = RunPaths(Store(lake, options), "run-1", "2026-12-03", str(tmp_path / "here"))
    numbers = stage_shards(here, batch, [3])
    for number in numbers:
        persist(here, here.shard_file(number))
        prepare_shard(here, number, config, index)
    there = RunPaths(Store(lake, options), "run-1", "2026-12-03", str(tmp_path / "there"))
    assert not (there.staging / "dedup").exists()
    remote = [link_partition(there, part, numbers, config, index) for part in range(4)]
    assert not (there.staging / "dedup").exists(), "the slices were read from the store, not downloaded whole"
    local = [link_partition(here, part, numbers, config, index) for part in range(4)]
    for (a, a_lake), (b, b_lake) in zip(remote, local, strict=True):
        assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("near", "offers", "estimates", "copies"))
        assert np.array_equal(a_lake, b_lake)
    assert sum(len(f.near) for f, _ in local) >= 2 and sum(len(f.copies) for f, _ in local) >= 2
    homes = [save_candidates(here, part, candidates, 4) for part, (_, candidates) in enumerate(local)]
    parts = [part for part in range(4) if match_sources(homes, part)]
    assert parts, "the lake's document shares band keys with its copies in the run"
    for part in parts:
        matches = match_partition(there, part, match_sources(homes, part), config, index)
        assert matches.equals(match_partition(here, part, match_sources(homes, part), config, index))
        clusters = {*matches.column("near_cluster").to_pylist(), *matches.column("in_cluster").to_pylist()}
        assert matches.num_rows >= 1 and clusters - {None} == {"old"}
    assert not (there.staging / "dedup").exists()


def index_contents(index_dir: Path, doc_ids: list[str], config: DedupConfig) -> list[tuple[object, ...]]:
    """What an index holds for ``doc_ids``: decisions, signatures, sizes and content hashes."""
    index = LakeIndex.open(index_dir, config)
    known, kept = index.decisions_of(doc_ids), index.kept_documents(doc_ids)
    return [(bool(f), c, bool(d), round(float(s), 6), k, sig.tobytes(), int(size), tuple(h.tolist()))
            for f, c, d, s, k, sig, size, h in zip(known.found.tolist(), known.dup_cluster, known.is_duplicate,
                                                   known.dup_similarity, known.dup_kind, kept.signatures,
                                                   kept.sizes, kept.hashes, strict=True)]


def test_the_runs_index_segments_hold_what_one_process_writes(tmp_path: Path) -> None:
    """The run's entries written from the staged shards (no whole-run batch) equal ``write_segment``'s: every
    new doc_id once, with its decision, signature, set size and content hash; rows the lake holds are left out."""
    run(tmp_path / "stages" / "_index", "first", batch_of(["a"], [article(1)]))
    run(tmp_path / "whole" / "_index", "first", batch_of(["a"], [article(1)]))
    texts = [*texts_of([["copy", "light", "excerpt"], ["copy", "copy", "heavy"]], seed=9), article(1), article(5)]
    ids = [*(f"t{i}" for i in range(len(texts) - 2)), "a", "t0"]  # "a" is in the lake; "t0" comes twice
    batch = batch_of(ids, texts, [0.4 + 0.05 * i for i in range(len(texts))])
    config = CONFIG
    whole = LakeIndex.open(tmp_path / "whole" / "_index", config)
    decisions = resolve(batch, whole, config)
    whole.write_segment(tmp_path / "whole" / "staged", "run-2", batch, decisions)
    publish_segment(tmp_path / "whole" / "_index", tmp_path / "whole" / "staged", "run-2")
    paths = RunPaths(str(tmp_path / "stages"), "run-2", "2026-12-03")
    numbers = stage_shards(paths, batch, [3, 5])
    index = LakeIndex.open(tmp_path / "stages" / "_index", config)
    table = decide_in_stages(paths, numbers, config, index)
    save_for_index(paths, table, unindexed_rows(paths, numbers, table))
    written = [write_partition(paths.staging / "_index", "run-2", paths, part, numbers, config)
               for part in range(config.partitions)]
    publish_segment(tmp_path / "stages" / "_index", paths.staging / "_index", "run-2")
    assert sum(written) == len(set(ids)) - 1
    every = sorted(set(ids))
    assert index_contents(tmp_path / "stages" / "_index", every, config) == \
        index_contents(tmp_path / "whole" / "_index", every, config)
    assert segment_arrays(tmp_path / "stages" / "_index", "run-2") == \
        segment_arrays(tmp_path / "whole" / "_index", "run-2"), "the same band rows and entries, partition by partition"


def segment_arrays(index_dir: Path, name: str) -> dict[str, list[object]]:
    """Every array of segment ``name`` in each partition (fixed-width strings decoded)."""
    out: dict[str, list[object]] = {}
    for folder in sorted(index_dir.glob(f"p*/{name}")):
        for array in sorted(folder.glob("*.npy")):
            values = np.load(array)
            key = f"{folder.parent.name}/{array.stem}"
            out[key] = [v.decode() for v in values.tolist()] if values.dtype.kind == "S" else values.tolist()
    assert out, f"no segment {name} under {index_dir}"
    return out

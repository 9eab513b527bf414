"""Lake indexes of format 2, as siftlake wrote them before the partitioned index (commit 16f2021): its segment
writer, kept to build older lakes of any size in tests and benchmarks (``tests/data/index_format2`` holds one
written by that code itself, and ``test_the_format_2_writer_writes_what_the_old_code_wrote`` checks this copy
against it)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flows.dedup import DedupBatch, DedupConfig, DedupDecisions, LakeIndex, resolve
from flows.dedup.fingerprint import band_key, hash_words
from flows.dedup.index.files import doc_id_keys, encode, npy_writer
from flows.dedup.index.segment import KIND_CODES


def write_format2(segment_dir: Path, config: DedupConfig, *, doc_ids: Sequence[str], clusters: Sequence[str],
                  signatures: np.ndarray, is_duplicate: np.ndarray, similarity: np.ndarray, sizes: np.ndarray,
                  hashes: np.ndarray, kinds: np.ndarray, containment: np.ndarray,
                  replaces: Sequence[str] = ()) -> None:
    """One format-2 segment in ``segment_dir`` (new), ``meta.json`` last: the old ``write_arrays``."""
    segment_dir.mkdir(parents=True)
    shape = (config.bands, len(signatures))
    with npy_writer(segment_dir / "band_keys.npy", np.uint64, shape) as keys_file, \
            npy_writer(segment_dir / "band_rows.npy", np.uint32, shape) as rows_file:
        for band in range(config.bands):
            key = band_key(signatures, config, band)
            order = np.argsort(key, kind="stable")
            keys_file.write(key[order].tobytes())
            rows_file.write(order.astype(np.uint32).tobytes())
    idk = doc_id_keys(list(doc_ids))
    id_order = np.argsort(idk, kind="stable")
    arrays = {"signatures": signatures, "id_keys": idk[id_order], "id_rows": id_order.astype(np.uint32),
              "doc_ids": encode(list(doc_ids)), "clusters": encode(list(clusters)), "is_duplicate": is_duplicate,
              "similarity": similarity, "sizes": sizes, "hashes": hashes, "kinds": kinds, "containment": containment}
    for name, array in arrays.items():
        np.save(segment_dir / f"{name}.npy", array, allow_pickle=False)
    meta = {"format": 2, "index_params": config.index_params(), "count": len(doc_ids), "replaces": list(replaces)}
    (segment_dir / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))


def write_batch(index_dir: Path, name: str, config: DedupConfig, batch: DedupBatch, decisions: DedupDecisions,
                rows: Sequence[int] | None = None) -> None:
    """The ``rows`` of a decided batch (all by default) as format-2 segment ``index_dir/segments/name``."""
    picked = list(range(len(batch))) if rows is None else list(rows)
    sel = np.array(picked, dtype=np.int64)
    write_format2(
        Path(index_dir) / "segments" / name, config,
        doc_ids=[batch.doc_ids[i] for i in picked], clusters=[decisions.dup_cluster[i] for i in picked],
        signatures=np.asarray(batch.signatures, dtype=np.uint32)[sel].reshape(-1, config.num_perm),
        is_duplicate=np.asarray(decisions.is_duplicate, dtype=bool)[sel],
        similarity=np.asarray(decisions.dup_similarity, dtype=np.float32)[sel],
        sizes=np.asarray(batch.sizes, dtype=np.uint32)[sel],
        hashes=hash_words([batch.content_hashes[i] for i in picked]).reshape(-1, 2),
        kinds=np.array([KIND_CODES.index(decisions.dup_kind[i]) for i in picked], dtype=np.uint8),
        containment=np.asarray(decisions.dup_containment, dtype=np.float32)[sel],
    )


def legacy_run(index_dir: Path, name: str, batch: DedupBatch, config: DedupConfig) -> DedupDecisions:
    """One run of the old code: resolve against the index, write the entries not yet in it as format 2."""
    index = LakeIndex.open(index_dir, config)
    decisions = resolve(batch, index, config)
    found = index.decisions_of(batch.doc_ids).found
    seen: set[str] = set()
    rows = []
    for i in np.argsort(np.asarray(decisions.is_duplicate, dtype=bool), kind="stable").tolist():
        if not found[i] and batch.doc_ids[i] not in seen:
            seen.add(batch.doc_ids[i])
            rows.append(i)
    if rows:
        write_batch(index_dir, name, config, batch, decisions, sorted(rows))
    return decisions


def legacy_compact(index_dir: Path, config: DedupConfig, name: str, max_entries: int = 500_000) -> Path | None:
    """The old ``compact``: the smallest live segments (at most ``max_entries`` entries in all) loaded whole and
    written as one format-2 segment (the old flow's cap was 500,000 entries: ~0.6 GB while merging)."""
    import shutil

    from flows.dedup.index.segment import Segment, live_segments

    root = Path(index_dir) / "segments"
    picked, total = [], 0
    for path, meta in sorted(live_segments(Path(index_dir)), key=lambda pm: (int(pm[1]["count"]), pm[0].name)):
        if total + int(meta["count"]) > max_entries:
            break
        picked.append((path, meta))
        total += int(meta["count"])
    if len(picked) < 2:
        return None
    segs = [Segment.load(p, m) for p, m in picked if int(m["count"]) > 0]
    replaces = sorted({p.name for p, _ in picked} | {r for _, m in picked for r in m.get("replaces", [])})
    write_format2(
        root / f"_tmp-{name}", config,
        doc_ids=[d.decode("utf-8") for s in segs for d in s.doc_ids],
        clusters=[c.decode("utf-8") for s in segs for c in s.clusters],
        signatures=np.concatenate([np.asarray(s.signatures) for s in segs]).reshape(-1, config.num_perm),
        is_duplicate=np.concatenate([np.asarray(s.is_duplicate) for s in segs]),
        similarity=np.concatenate([np.asarray(s.similarity) for s in segs]),
        sizes=np.concatenate([np.asarray(s.sizes) for s in segs]),
        hashes=np.concatenate([np.asarray(s.hashes) for s in segs]).reshape(-1, 2),
        kinds=np.concatenate([np.asarray(s.kinds) for s in segs]),
        containment=np.concatenate([np.asarray(s.containment) for s in segs]),
        replaces=replaces,
    )
    (root / f"_tmp-{name}").rename(root / name)
    for old in replaces:
        shutil.rmtree(root / old, ignore_errors=True)
    return root / name

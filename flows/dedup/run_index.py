"""The last step of a run's partitioned dedup (``flows.dedup.stages``): its new documents as index entries, one
segment per index partition (``write_partitioned``), read from the staged shards as each partition needs them.

``RunEntries`` holds what is small per document (its doc_id, content hash, set size, row and decision, ~100
bytes) and reads signatures from the shards' ``sigs`` files (``flows.dedup.staged``) a block or a partition at a
time, so the flow never holds the run's signatures (512 bytes a document with the defaults).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flows.dedup import staged
from flows.dedup.config import DedupConfig
from flows.dedup.fingerprint import hash_words
from flows.dedup.index.files import doc_id_keys, encode
from flows.dedup.index.layout import write_index_file
from flows.dedup.index.segment import KIND_CODES
from flows.dedup.index.write import Entries, write_partitioned
from flows.dedup.stages import staged_rows
from flows.lake.layout import RunPaths


class RunEntries:
    """The run's rows not in the lake yet, one entry per doc_id, as an ``EntrySource`` for ``write_partitioned``."""

    def __init__(self, paths: RunPaths, numbers: Sequence[int], decisions: pa.Table) -> None:
        self.paths = paths
        shards: list[np.ndarray] = []
        nodes: list[np.ndarray] = []
        hashes: list[np.ndarray] = []
        sizes: list[np.ndarray] = []
        duplicate: list[np.ndarray] = []
        doc_ids: list[np.ndarray] = []
        first = 0
        self.changed: dict[int, tuple[str, float, int, float]] = {}
        """Entry position -> (dup_cluster, dup_similarity, kind code, dup_containment), where not kept alone."""
        for number in numbers:
            rows, node = _new_rows(paths, number)
            table = staged_rows(paths, number, ["doc_id", "content_hash", "n_shingles"]).take(pa.array(rows))
            duplicate.append(self._decide(first, rows, decisions, number))
            first += len(rows)
            shards.append(np.full(len(rows), number, np.int64))
            nodes.append(node)
            doc_ids.append(encode(table.column("doc_id").to_pylist()))  # a shard's strings at a time
            hashes.append(hash_words(table.column("content_hash").to_pylist()))
            sizes.append(table.column("n_shingles").to_numpy().astype(np.uint32))
        self.shard = np.concatenate(shards) if shards else np.empty(0, np.int64)
        self.node = np.concatenate(nodes) if nodes else np.empty(0, np.int64)
        width = max((ids.dtype.itemsize for ids in doc_ids), default=1)
        self.doc_ids = np.concatenate([ids.astype(f"S{width}") for ids in doc_ids]) if doc_ids else encode([])
        self.hashes = np.concatenate(hashes) if hashes else np.empty((0, 2), np.uint64)
        self.sizes = np.concatenate(sizes) if sizes else np.empty(0, np.uint32)
        self._keep_one_per_doc_id(np.concatenate(duplicate) if duplicate else np.empty(0, bool))

    def _decide(self, first: int, rows: np.ndarray, decisions: pa.Table, number: int) -> np.ndarray:
        """Record the decisions of a shard's new ``rows`` (entries ``first`` onwards) that are not "kept alone";
        return which rows are duplicates."""
        mine = decisions.filter(pc.equal(decisions.column("shard"), number)).to_pylist()
        at = {row["row"]: row for row in mine}
        duplicate = np.zeros(len(rows), dtype=bool)
        for k, r in enumerate(rows.tolist()):
            if r in at:
                row = at[r]
                duplicate[k] = bool(row["is_duplicate"])
                self.changed[first + k] = (row["dup_cluster"], row["dup_similarity"],
                                           KIND_CODES.index(row["dup_kind"]), row["dup_containment"])
        return duplicate

    def _keep_one_per_doc_id(self, duplicate: np.ndarray) -> None:
        """A doc_id given twice in the run is indexed once: its kept row when one of them is kept."""
        keys = doc_id_keys(self.doc_ids)
        order = np.lexsort((np.arange(len(keys)), duplicate, keys))
        first = np.ones(len(order), dtype=bool)
        first[1:] = keys[order][1:] != keys[order][:-1]
        keep = np.sort(order[first])
        self.entry = keep  # positions among the run's new rows
        self.duplicate, self.keys = duplicate[keep], keys[keep]

    def __len__(self) -> int:
        return len(self.entry)

    def id_keys(self) -> np.ndarray:
        return self.keys

    def signature_rows(self, start: int, stop: int) -> np.ndarray:
        return self._signatures(self.entry[start:stop])

    def _signatures(self, positions: np.ndarray) -> np.ndarray:
        out: np.ndarray | None = None
        for number in np.unique(self.shard[positions]).tolist():
            mine = np.flatnonzero(self.shard[positions] == number)
            wanted, back = np.unique(self.node[positions[mine]], return_inverse=True)
            sigs = staged.picked_rows(self.paths, number, "sigs", wanted)[back.reshape(-1)]
            if out is None:
                out = np.zeros((len(positions), sigs.shape[1]), np.uint32)
            out[mine] = sigs
        return out if out is not None else np.empty((0, 0), np.uint32)

    def take(self, rows: np.ndarray) -> Entries:
        positions = self.entry[rows]
        clusters = [self.changed[p][0] if p in self.changed else d.decode("utf-8")
                    for p, d in zip(positions.tolist(), self.doc_ids[positions].tolist(), strict=True)]
        changed = [self.changed.get(p, ("", 1.0, 0, 1.0)) for p in positions.tolist()]
        return Entries(
            signatures=self._signatures(positions),
            doc_ids=self.doc_ids[positions],
            clusters=encode(clusters),
            is_duplicate=self.duplicate[rows],
            similarity=np.array([c[1] for c in changed], dtype=np.float32),
            sizes=self.sizes[positions],
            hashes=self.hashes[positions],
            kinds=np.array([c[2] for c in changed], dtype=np.uint8),
            containment=np.array([c[3] for c in changed], dtype=np.float32),
        )


def _new_rows(paths: RunPaths, number: int) -> tuple[np.ndarray, np.ndarray]:
    """The shard's rows not in the lake (sorted) and the node (row of its ``sigs`` file) of each."""
    copies = staged.rows(paths, number, "copies", 0, staged.length(paths, number, "copies"))
    nodes = staged.rows(paths, number, "nodes", 0, staged.length(paths, number, "nodes"))
    where = {(hi, lo): k for k, (hi, lo) in enumerate(zip(nodes["hi"].tolist(), nodes["lo"].tolist(), strict=True))}
    order = np.argsort(copies["row"], kind="stable")
    node = np.array([where[(hi, lo)] for hi, lo in zip(copies["hi"][order].tolist(), copies["lo"][order].tolist(),
                                                         strict=True)], dtype=np.int64)
    return copies["row"][order].astype(np.int64), node


def write_run_entries(root: Path, name: str, paths: RunPaths, numbers: Sequence[int], decisions: pa.Table,
                      config: DedupConfig, new_index: bool) -> int:
    """Write the run's new entries as segment ``name`` of each index partition under ``root``; return their count."""
    entries = RunEntries(paths, numbers, decisions)
    if len(entries) == 0:
        return 0
    if new_index:
        write_index_file(root, config)
    write_partitioned(root, name, config, entries)
    return len(entries)

"""What a takedown removes and changes, found by scanning only the columns it needs, file by file.

1. The documents the list matches (by doc_id, URL key or URL host).
2. With ``--with-copies``, every other member of their duplicate clusters (the rows whose ``dup_cluster`` is
   one of theirs): exact, near and contained copies, and the cluster's kept document whichever it is.
3. Re-keep: a cluster whose kept document is removed while other members stay gets a new kept document,
   the best remaining member by the keep policy (highest ``quality_score``, then longest text, then smallest
   ``doc_id``; ``flows.dedup.resolve``). It becomes kept (``is_duplicate`` false, its own ``dup_cluster``);
   the other members point to it, with ``dup_similarity`` and ``dup_containment`` estimated against it from
   the index's signatures and ``dup_kind`` ``exact`` when their text is the same as its, else as before
   (``near`` for a former exact copy). Every cluster keeps exactly one kept document, or none.

Memory follows the matches and their clusters, not the lake: each file is read for a few columns at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flows.dedup import EntryChange, LakeIndex, estimated_containment, estimated_jaccard
from flows.forget.lists import TakedownList, domains_of, url_host, url_key
from flows.lake import DOCUMENTS, table_files
from flows.storage import Store

_MEMBER_COLUMNS = ["doc_id", "dup_cluster", "quality_score", "n_chars", "content_hash", "dup_kind",
                   "dup_similarity", "dup_containment"]


@dataclass
class Member:
    """A row of a cluster touched by the takedown: where it is and what the keep policy looks at."""

    file: str
    doc_id: str
    dup_cluster: str
    quality: float
    length: int
    content_hash: str
    dup_kind: str | None
    similarity: float
    containment: float

    def rank(self) -> tuple[float, int, str]:
        """Sort key of the keep policy: the smallest is kept."""
        return (-self.quality, -self.length, self.doc_id)


@dataclass
class Plan:
    """The takedown decided: rows to remove and to change, in which files; the clusters re-kept."""

    matched: dict[str, str] = field(default_factory=dict)
    """doc_id -> file of each document the list matches."""
    removed: dict[str, str] = field(default_factory=dict)
    """doc_id -> file of each document removed (the matched ones, and their copies with --with-copies)."""
    changes: dict[str, EntryChange] = field(default_factory=dict)
    changed_files: dict[str, str] = field(default_factory=dict)
    re_kept: list[dict[str, Any]] = field(default_factory=list)
    """One entry per re-kept cluster: the old kept doc_id, the new one, the members re-pointed."""
    rows_before: int = 0

    @property
    def files(self) -> list[str]:
        return sorted(set(self.removed.values()) | set(self.changed_files.values()))


def _files(lake: Store) -> list[str]:
    return table_files(lake, DOCUMENTS)


def _read(lake: Store, key: str, columns: list[str]) -> pa.Table:
    """The file's ``columns``; those an older run's file lacks (``dup_kind``...) come back null."""
    with lake.fs.open(lake.path(key), "rb") as handle:
        parquet = pq.ParquetFile(handle)
        present = [c for c in columns if c in parquet.schema_arrow.names]
        table = parquet.read(columns=present)
    for name in columns:
        if name not in present:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    return table


def _matches(table: pa.Table, wanted: TakedownList) -> list[int]:
    if wanted.kind == "doc_ids":
        mask = pc.is_in(table.column("doc_id"), value_set=pa.array(sorted(wanted.keys), pa.string()))
        return np.flatnonzero(mask.to_numpy(zero_copy_only=False)).tolist()
    urls = table.column("url").to_pylist()
    if wanted.kind == "urls":
        return [i for i, url in enumerate(urls) if url and url_key(url) in wanted.keys]
    hosts = (url_host(url) if url else None for url in urls)
    return [i for i, host in enumerate(hosts) if host and any(d in wanted.keys for d in domains_of(host))]


def _members(lake: Store, clusters: set[str]) -> Iterator[Member]:
    """The rows of ``clusters`` (by ``dup_cluster``), file by file."""
    value_set = pa.array(sorted(clusters), pa.string())
    for key in _files(lake):
        table = _read(lake, key, _MEMBER_COLUMNS)
        table = table.filter(pc.is_in(table.column("dup_cluster"), value_set=value_set))
        for row in table.to_pylist():
            quality = row["quality_score"]
            yield Member(key, row["doc_id"], row["dup_cluster"],
                         -math.inf if quality is None or math.isnan(quality) else float(quality),
                         int(row["n_chars"] or 0), row["content_hash"] or "", row["dup_kind"],
                         _number(row["dup_similarity"]), _number(row["dup_containment"]))


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def plan_takedown(lake: Store, wanted: TakedownList, with_copies: bool, index: LakeIndex | None) -> Plan:
    """Scan the documents table for the list's matches and their clusters; decide removals and re-keeps."""
    plan = Plan()
    cluster_of: dict[str, str] = {}
    for key in _files(lake):
        table = _read(lake, key, ["doc_id", "url", "dup_cluster"])
        ids, clusters = table.column("doc_id").to_pylist(), table.column("dup_cluster").to_pylist()
        plan.rows_before += table.num_rows
        for row in _matches(table, wanted):
            plan.matched[ids[row]] = key
            cluster_of[ids[row]] = clusters[row] or ids[row]
    plan.removed = dict(plan.matched)
    if not plan.matched:
        return plan
    # Clusters to look into: all of the matches' with --with-copies, else those whose kept document goes.
    wanted_clusters = set(cluster_of.values()) if with_copies else {c for d, c in cluster_of.items() if c == d}
    members: dict[str, list[Member]] = {}
    for member in _members(lake, wanted_clusters) if wanted_clusters else iter(()):
        members.setdefault(member.dup_cluster, []).append(member)
    if with_copies:
        plan.removed.update({m.doc_id: m.file for group in members.values() for m in group})
        return plan
    for cluster, group in sorted(members.items()):
        staying = sorted((m for m in group if m.doc_id not in plan.removed), key=Member.rank)
        if staying:
            _re_keep(plan, cluster, staying, index)
    return plan


def _re_keep(plan: Plan, old: str, staying: list[Member], index: LakeIndex | None) -> None:
    """The best staying member becomes the cluster's kept document; the others point to it."""
    kept, others = staying[0], staying[1:]
    plan.changes[kept.doc_id] = EntryChange(kept.doc_id, False, 1.0, None, 1.0)
    plan.changed_files[kept.doc_id] = kept.file
    similarity, containment = _estimates(index, kept, others)
    for member, sim, cont in zip(others, similarity, containment, strict=True):
        kind = "exact" if member.content_hash == kept.content_hash else \
            ("near" if member.dup_kind == "exact" else member.dup_kind)
        plan.changes[member.doc_id] = EntryChange(kept.doc_id, True, 1.0 if kind == "exact" else sim, kind,
                                                  1.0 if kind == "exact" else cont)
        plan.changed_files[member.doc_id] = member.file
    plan.re_kept.append({"cluster": old, "kept": kept.doc_id, "members": len(others)})


def _estimates(index: LakeIndex | None, kept: Member, others: list[Member]) -> tuple[list[float], list[float]]:
    """Estimated Jaccard and containment of each member against the new kept document, from the index's
    signatures; a member the index lacks keeps the values it had."""
    similarity = [m.similarity for m in others]
    containment = [m.containment for m in others]
    if index is None or not others:
        return similarity, containment
    found = index.kept_documents([kept.doc_id, *(m.doc_id for m in others)])
    if not found.found[0]:
        return similarity, containment
    theirs = np.repeat(found.signatures[:1], len(others), axis=0)
    jaccard = estimated_jaccard(found.signatures[1:], theirs)
    inside = estimated_containment(found.signatures[1:], theirs)
    for i in np.flatnonzero(found.found[1:]).tolist():
        similarity[i], containment[i] = float(jaccard[i]), float(inside[i])
    return similarity, containment

"""The resolver: which rows of a run are exact, near or contained duplicates, within the run and against
the lake's index, and which document of each cluster is kept.

Rows with equal fingerprints are one node; candidate pairs are the nodes sharing an LSH band key, verified
into near links and containment offers (``flows.dedup.graph``, work that can be split by band-key partition).
The near links' components are the clusters (``decide_new``); components are linked to the components or lake
documents that contain them, and each row is then assigned its cluster.

Keep policy (see :func:`resolve`):

* Within a run, near-duplicates form clusters (connected components of "estimated Jaccard >=
  threshold" edges); the kept document is the one with the highest quality score, then the
  longest text, then the smallest ``doc_id``. This is a total order on the documents' own values,
  so the outcome does not depend on row order, shard size or worker count.
* A cluster whose largest member is contained in a larger member of another cluster joins that
  cluster's destination (its members are ``contained`` duplicates): of a document and one that
  contains it, the containing one is kept, whatever their scores. Links only go from smaller to
  larger clusters, so they end; an excerpt contained in several clusters joins the best-estimated
  one, and those clusters stay apart (an excerpt in two mash-ups does not merge them).
* Across runs, a document already in the lake stays kept and never changes: a new document that
  matches a lake document (kept or duplicate) joins that lake document's ``dup_cluster``, and a new
  document contained in a lake document joins its ``dup_cluster`` too. A new document that
  contains a lake document is kept as a new document: the lake's row is not rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flows.dedup.config import DedupConfig
from flows.dedup.fingerprint import band_keys, estimated_containment, estimated_jaccard, hash_words
from flows.dedup.graph import Links, Nodes, UnionFind, bucket_pairs, distinct_nodes, link_candidates
from flows.dedup.index.lake_index import LakeIndex
from flows.dedup.records import DedupBatch, DedupDecisions, KeptLookup, LakeMatches


def resolve(batch: DedupBatch, index: LakeIndex, config: DedupConfig) -> DedupDecisions:
    """Exact, near and contained duplicates inside ``batch`` and against the lake ``index``.

    Rows whose ``doc_id`` is already in the lake get the lake's decision back unchanged (a re-run
    changes nothing). Everything else depends only on the set of rows, never on their order.
    """
    decisions = DedupDecisions.all_kept(batch.doc_ids)
    known = index.decisions_of(batch.doc_ids)
    decisions.copy_rows(np.flatnonzero(known.found).tolist(), known)
    todo = np.flatnonzero(~known.found)
    if len(todo):
        _resolve_new(batch, todo, index, config, decisions)
    return decisions


@dataclass
class _Target:
    """Where a near-duplicate component ends up: a lake cluster, or a component of this run."""

    lake_cluster: str | None
    component: int
    contained: bool
    """Reached through a containment link (its rows are ``contained`` duplicates)."""


def _resolve_new(
    batch: DedupBatch,
    todo: np.ndarray,
    index: LakeIndex,
    config: DedupConfig,
    out: DedupDecisions,
) -> None:
    nodes = distinct_nodes(batch.signatures[todo], np.asarray(batch.sizes, dtype=np.uint32)[todo])
    keys = band_keys(nodes.signatures, config)
    every = np.arange(len(nodes))
    links = link_candidates(nodes, ((keys[band], every) for band in range(len(keys))), config)
    near, inside = index.query(nodes.signatures, nodes.sizes)
    decide_new(batch, todo, nodes, links, (near, inside), index, out)


def decide_new(batch: DedupBatch, todo: np.ndarray, nodes: Nodes, links: Links,
               lake: tuple[LakeMatches, LakeMatches], index: KeptLookup, out: DedupDecisions) -> None:
    """Decide rows ``todo`` of the batch (none of them in the lake yet) from their nodes' verified links and best
    lake matches (near, containing): clusters are the components of the near links."""
    usizes = nodes.sizes
    linked = UnionFind(len(nodes))
    for u, v in links.near_pairs().tolist():
        linked.union(u, v)
    roots = linked.roots(np.arange(len(nodes)))
    lake_near, lake_in = _best_lake_matches(lake[0], len(nodes)), _best_lake_matches(lake[1], len(nodes))
    # As in the run, only a component's largest member being contained takes it into a container.
    lake_in = [m if big else None for m, big in zip(lake_in, _largest_members(roots, usizes).tolist(), strict=True)]
    targets = _component_targets(
        roots, usizes, _component_best(lake_near, roots), _component_best(lake_in, roots),
        _batch_containers(roots, usizes, *links.offer_pairs()),
    )
    inverse = nodes.of_row
    row_comp = roots[inverse]
    row_target = [targets[int(c)] for c in row_comp.tolist()]
    in_lake = np.array([t.lake_cluster is not None for t in row_target], dtype=bool)
    chosen = []
    for k in np.flatnonzero(in_lake).tolist():
        # A row joins its own best lake match's cluster, else its component's (linked through other rows).
        own = lake_near[int(inverse[k])] if not row_target[k].contained else lake_in[int(inverse[k])]
        chosen.append(own[1] if own is not None and row_target[k].component == row_comp[k] else
                      str(row_target[k].lake_cluster))
    _assign_lake(batch, todo[in_lake], chosen, [t.contained for t, lake in zip(row_target, in_lake, strict=True)
                                                if lake], index, out)
    rest = np.flatnonzero(~in_lake)
    _assign_batch(batch, todo[rest], row_comp[rest], np.array([row_target[k].component for k in rest.tolist()],
                  dtype=np.int64), np.array([row_target[k].contained for k in rest.tolist()], dtype=bool), out)


def candidate_pairs(keys: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, ``i < j``, that share a band key in any band (each pair once; see ``bucket_pairs``)."""
    n = keys.shape[1]
    codes = []
    every = np.arange(n)
    for band in range(keys.shape[0]):
        for i, j in bucket_pairs(keys[band], every, cap):
            lo, hi = np.minimum(i, j).astype(np.uint64), np.maximum(i, j).astype(np.uint64)
            codes.append(lo * np.uint64(n) + hi)
    if not codes:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    unique = np.unique(np.concatenate(codes))
    return (unique // np.uint64(n)).astype(np.int64), (unique % np.uint64(n)).astype(np.int64)


def _component_order(roots: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per row, the rank of its component by (largest set in it, root): containment links go up this order."""
    largest = np.zeros(len(roots), dtype=np.int64)
    np.maximum.at(largest, roots, np.asarray(sizes, dtype=np.int64))
    comps = np.unique(roots)
    rank = np.zeros(len(roots), dtype=np.int64)
    rank[comps[np.lexsort((comps, largest[comps]))]] = np.arange(len(comps))
    return rank


def _batch_containers(roots: np.ndarray, sizes: np.ndarray, offers: np.ndarray,
                      estimates: np.ndarray) -> dict[int, int]:
    """For each component with a member contained in a larger member of another component (the verified
    ``offers``, (small, large) node pairs), that container's component: the best-estimated link, then the
    larger container, then the smaller root.

    Links only go from a lower to a higher component rank (``_component_order``), so following them
    ends. A component is never joined by two containers: a story contained in two mash-ups does not
    make the mash-ups duplicates of each other.
    """
    rank = _component_order(roots, sizes)
    small, large = offers[:, 0], offers[:, 1]
    # A component goes into a container only when its largest member is contained: a feed that
    # is a near-duplicate of its article does not take the article into a story quoting the feed.
    keep = (roots[small] != roots[large]) & _largest_members(roots, sizes)[small]
    src, dst, estimate = roots[small[keep]], roots[large[keep]], estimates[keep]
    up = rank[src] < rank[dst]
    best: dict[int, tuple[float, int, int]] = {}
    for a, b, e in zip(src[up].tolist(), dst[up].tolist(), estimate[up].tolist(), strict=True):
        offer = (e, int(rank[b]), b)
        if a not in best or offer > best[a]:
            best[a] = offer
    return {a: b for a, (_, _, b) in best.items()}


def _largest_members(roots: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per row: is it its component's largest member (largest set, then smallest row)?"""
    order = np.lexsort((np.arange(len(roots)), -np.asarray(sizes, dtype=np.int64), roots))
    first = np.r_[True, roots[order][1:] != roots[order][:-1]]
    out = np.zeros(len(roots), dtype=bool)
    out[order[first]] = True
    return out


def _component_targets(
    roots: np.ndarray,
    sizes: np.ndarray,
    lake_near: dict[int, tuple[float, str]],
    lake_in: dict[int, tuple[float, str]],
    containers: dict[int, int],
) -> dict[int, _Target]:
    """Each component's destination: a lake near match first (lake documents stay kept), then a lake
    document containing it, then the destination of a larger component of this run containing it."""
    rank = _component_order(roots, sizes)
    targets: dict[int, _Target] = {}
    comps = np.unique(roots)
    for comp in comps[np.argsort(-rank[comps], kind="stable")].tolist():  # containers before the contained
        if comp in lake_near:
            targets[comp] = _Target(lake_near[comp][1], comp, False)
        elif comp in lake_in:
            targets[comp] = _Target(lake_in[comp][1], comp, True)
        elif comp in containers:
            up = targets[containers[comp]]
            targets[comp] = _Target(up.lake_cluster, up.component, True)
        else:
            targets[comp] = _Target(None, comp, False)
    return targets




def _best_lake_matches(matches: LakeMatches, n: int) -> list[tuple[float, str] | None]:
    # Per query: the lake cluster of its best lake match (ties: smallest cluster id).
    best: list[tuple[float, str] | None] = [None] * n
    for q, cluster, sim in zip(
        matches.query_rows.tolist(), matches.dup_cluster, matches.similarity.tolist(), strict=True
    ):
        cur = best[q]
        if cur is None or sim > cur[0] or (sim == cur[0] and cluster < cur[1]):
            best[q] = (sim, cluster)
    return best


def _component_best(best: list[tuple[float, str] | None], roots: np.ndarray) -> dict[int, tuple[float, str]]:
    comp: dict[int, tuple[float, str]] = {}
    for u, match in enumerate(best):
        if match is None:
            continue
        root = int(roots[u])
        cur = comp.get(root)
        if cur is None or match[0] > cur[0] or (match[0] == cur[0] and match[1] < cur[1]):
            comp[root] = match
    return comp


def _describe(out: DedupDecisions, row: int, kept: str, similarity: float, containment: float,
              exact: bool, contained: bool) -> None:
    out.dup_cluster[row] = kept
    out.is_duplicate[row] = True
    out.dup_similarity[row] = similarity
    out.dup_containment[row] = containment
    out.dup_kind[row] = "exact" if exact else "contained" if contained else "near"


def _assign_lake(batch: DedupBatch, rows: np.ndarray, chosen: list[str], contained: list[bool],
                 index: KeptLookup, out: DedupDecisions) -> None:
    # The lake's documents stay kept: each row becomes a duplicate of the lake cluster chosen for it.
    if len(rows) == 0:
        return
    kept = index.kept_documents(chosen)
    mine = np.asarray(batch.signatures[rows], dtype=np.uint32)
    sims = estimated_jaccard(mine, kept.signatures)
    inside = estimated_containment(mine, kept.signatures)
    exact = (hash_words([batch.content_hashes[r] for r in rows.tolist()]) == kept.hashes).all(axis=1)
    for pos, row in enumerate(rows.tolist()):
        if not kept.found[pos]:  # the kept document's own entry is missing (should not happen)
            sims[pos], inside[pos], exact[pos] = np.nan, np.nan, False
        _describe(out, row, chosen[pos], float(sims[pos]), float(inside[pos]), bool(exact[pos]), contained[pos])


def _assign_batch(batch: DedupBatch, rows: np.ndarray, comps: np.ndarray, targets: np.ndarray,
                  contained: np.ndarray, out: DedupDecisions) -> None:
    # Inside a destination component new to the lake: keep the best of its own members (never one
    # absorbed from a contained component) by quality, then length, then doc_id.
    if len(rows) == 0:
        return
    quality = np.nan_to_num(np.asarray(batch.quality, dtype=np.float64)[rows], nan=-np.inf)
    lengths = np.asarray(batch.lengths, dtype=np.int64)[rows]
    ids = [batch.doc_ids[r] for r in rows.tolist()]
    order = sorted(np.flatnonzero(comps == targets).tolist(), key=lambda k: (-quality[k], -lengths[k], ids[k]))
    kept_of: dict[int, int] = {}
    for k in order:
        kept_of.setdefault(int(comps[k]), k)
    kept = np.array([kept_of[int(t)] for t in targets.tolist()], dtype=np.int64)
    mine, theirs = batch.signatures[rows], batch.signatures[rows[kept]]
    sims, inside = estimated_jaccard(mine, theirs), estimated_containment(mine, theirs)
    for k, row in enumerate(rows.tolist()):
        if kept[k] != k:
            exact = batch.content_hashes[row] == batch.content_hashes[int(rows[kept[k]])]
            _describe(out, row, ids[kept[k]], float(sims[k]), float(inside[k]), exact, bool(contained[k]))

"""The duplicate graph of a run: its distinct fingerprints (nodes), the candidate pairs their band keys give, and
what those verify to (near-duplicate links, containment offers).

Work is expressed over groups of ``(band key, node)`` rows: one band at a time in one process, one partition of
the band keys in a partitioned run. Each group gives its candidate pairs and their verdicts independently, and the
verdicts of all groups together decide the same clusters whichever way the keys were grouped: near links are
only ever added (the components of their union are what counts), and containment offers are filtered once the
components are known (``flows.dedup.resolve``).

Nodes are ordered by a 128-bit digest of (signature, set size): an order every worker computes alike from a
document's own fingerprint, so the candidates a huge bucket is cut to (``max_candidates_per_band``) and every
tie-break depend on the documents only, never on where they were read or in which order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import xxhash

from flows.dedup.config import DedupConfig
from flows.dedup.fingerprint import contained_in, estimated_jaccard

# Candidate pairs verified at once: bounds the gathered signatures to ~32 MB each side.
_VERIFY_CHUNK = 1 << 15


def node_digests(sigs: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``(n, 2)`` uint64: xxh3_128 of each row's signature bytes and set size (equal fingerprints, equal digests)."""
    rows = np.ascontiguousarray(sigs, dtype=np.uint32)
    sizes32 = np.asarray(sizes, dtype=np.uint32)
    out = np.empty((len(rows), 2), dtype=np.uint64)
    for i in range(len(rows)):
        digest = xxhash.xxh3_128_intdigest(rows[i].tobytes() + sizes32[i].tobytes())
        out[i] = (digest >> 64, digest & 0xFFFF_FFFF_FFFF_FFFF)
    return out


@dataclass
class Nodes:
    """The distinct fingerprints of some rows, in digest order, and the node of each row."""

    signatures: np.ndarray
    sizes: np.ndarray
    digests: np.ndarray
    of_row: np.ndarray

    def __len__(self) -> int:
        return len(self.sizes)


def distinct_nodes(sigs: np.ndarray, sizes: np.ndarray) -> Nodes:
    """Rows with the same (signature, set size) become one node, so exact copies are handled once."""
    digests = node_digests(sigs, sizes)
    if len(digests) == 0:
        return Nodes(np.empty((0, sigs.shape[1]), np.uint32), np.empty(0, np.uint32), digests,
                     np.empty(0, np.int64))
    uniq, inverse = unique_digests(digests)
    first = first_positions(inverse, len(uniq))
    return Nodes(np.ascontiguousarray(sigs[first], dtype=np.uint32), np.asarray(sizes, dtype=np.uint32)[first],
                 uniq, inverse)


def first_positions(values: np.ndarray, n: int) -> np.ndarray:
    """For each of ``0 .. n-1``, the first position in ``values`` holding it (-1: none)."""
    first = np.full(n, -1, dtype=np.int64)
    first[values[::-1]] = np.arange(len(values))[::-1]  # the last write wins: the first position
    return first


def unique_digests(digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``(n, 2)`` digests, sorted, and the position of each row among them (as
    ``np.unique(axis=0)``, ~25x faster: a lexsort of two columns rather than a sort of opaque records)."""
    if len(digests) == 0:
        return digests.reshape(0, 2), np.empty(0, np.int64)
    order = np.lexsort((digests[:, 1], digests[:, 0]))
    ordered = digests[order]
    starts = np.r_[True, np.any(ordered[1:] != ordered[:-1], axis=1)]
    inverse = np.empty(len(digests), dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    return ordered[starts], inverse


def partition_of(keys: np.ndarray, partitions: int) -> np.ndarray:
    """The partition of each band key: keys are well-mixed 64-bit hashes with the band mixed in, so their
    remainder spreads buckets evenly and a bucket (one key) never spans two partitions."""
    return np.asarray(keys, dtype=np.uint64) % np.uint64(partitions)


def band_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``band_keys`` output ``(bands, n)`` as flat ``(key, node)`` rows, every band's keys of every node."""
    bands, n = keys.shape
    return keys.reshape(-1), np.tile(np.arange(n), bands)


def bucket_pairs(keys: np.ndarray, nodes: np.ndarray, cap: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Node pairs sharing a band key in one group of ``(key, node)`` rows, one bucket distance at a time.

    A bucket's members are ordered by node, and each is paired with at most ``cap`` following ones, which bounds
    the quadratic blow-up of a huge bucket. A pair may come again from another band or group.
    """
    order = np.lexsort((nodes, keys))
    sorted_keys, sorted_nodes = keys[order], nodes[order]
    for distance in range(1, min(cap, len(keys) - 1) + 1):
        same = np.flatnonzero(sorted_keys[:-distance] == sorted_keys[distance:])
        if len(same) == 0:
            break
        yield sorted_nodes[same], sorted_nodes[same + distance]


@dataclass
class Links:
    """What the candidate pairs of some groups verified to."""

    near: list[np.ndarray] = field(default_factory=list)
    """``(k, 2)`` node pairs with estimated Jaccard >= threshold: enough of them to connect every component."""
    offers: list[np.ndarray] = field(default_factory=list)
    """``(k, 2)`` (small, large) node pairs where the small node is contained in the large one."""
    estimates: list[np.ndarray] = field(default_factory=list)
    """The estimated containment of each offer."""

    def near_pairs(self) -> np.ndarray:
        return np.concatenate(self.near) if self.near else np.empty((0, 2), np.int64)

    def offer_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.offers:
            return np.empty((0, 2), np.int64), np.empty(0, np.float64)
        return np.concatenate(self.offers), np.concatenate(self.estimates)


class UnionFind:
    """Components of node links; the smaller node id becomes the root, so the result ignores the link order."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, u: int) -> int:
        parent = self.parent
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = int(parent[u])
        return u

    def union(self, u: int, v: int) -> bool:
        """Link ``u`` and ``v``; False when they were linked already."""
        ru, rv = self.find(u), self.find(v)
        if ru == rv:
            return False
        self.parent[max(ru, rv)] = min(ru, rv)
        return True

    def roots(self, nodes: np.ndarray) -> np.ndarray:
        """The roots of ``nodes`` (vectorized ``find``, without path compression)."""
        roots: np.ndarray = self.parent[nodes]
        while True:
            up: np.ndarray = self.parent[roots]
            if np.array_equal(up, roots):
                return roots
            roots = up


def link_candidates(nodes: Nodes, groups: Iterable[tuple[np.ndarray, np.ndarray]], config: DedupConfig,
                    linked: UnionFind | None = None) -> Links:
    """Verify the candidate pairs of each ``(keys, node ids)`` group: near links and containment offers.

    A pair already linked (through earlier links) is skipped unverified: it is in one component whatever it
    verifies to. This keeps a page copied many times at one pass over its bucket instead of every pair.
    """
    linked = linked or UnionFind(len(nodes))
    links = Links()
    for keys, members in groups:
        for left, right in bucket_pairs(keys, members, config.max_candidates_per_band):
            apart = linked.roots(left) != linked.roots(right)
            for start in range(0, int(apart.sum()), _VERIFY_CHUNK):
                lo = left[apart][start : start + _VERIFY_CHUNK]
                hi = right[apart][start : start + _VERIFY_CHUNK]
                _verify(nodes, lo, hi, config, linked, links)
    return links


def _verify(nodes: Nodes, left: np.ndarray, right: np.ndarray, config: DedupConfig, linked: UnionFind,
            links: Links) -> None:
    """Near-duplicate pairs become links; the others are checked for containment, smaller in larger."""
    sigs, sizes = nodes.signatures, nodes.sizes
    similar = estimated_jaccard(sigs[left], sigs[right]) >= config.threshold
    joined = [linked.union(u, v) for u, v in zip(left[similar].tolist(), right[similar].tolist(), strict=True)]
    links.near.append(np.column_stack([left[similar], right[similar]])[np.asarray(joined, dtype=bool)])
    left, right = left[~similar], right[~similar]
    swap = (sizes[left] > sizes[right]) | ((sizes[left] == sizes[right]) & (left > right))
    small, large = np.where(swap, right, left), np.where(swap, left, right)
    inside, estimate = contained_in(sigs[small], sigs[large], sizes[small], sizes[large], config)
    links.offers.append(np.column_stack([small[inside], large[inside]]))
    links.estimates.append(estimate[inside])

"""Shared builders for the dedup tests: synthetic articles, light edits, batches."""

from __future__ import annotations

import random

import numpy as np

from flows.dedup import DedupBatch, DedupConfig, content_hash, fingerprints

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

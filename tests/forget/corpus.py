"""A small corpus with copies of every kind, the lake the real ingest makes of it, and snapshots of a lake."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from flows.config import IngestConfig
from flows.dedup import LakeIndex, index_config
from flows.forget import Blocklist
from flows.lake import KnownUnits
from flows.storage import Store

WORDS = str.split("the river runs past the old mill and the children walk along the bank every morning before "
                  "school while their parents talk about weather harvest price of bread in market town a small "
                  "boat waits near bridge where fishermen mend nets under grey sky quiet songs from distant hills "
                  "carry over fields green with barley wheat oats rye")


def text(seed: int, paragraphs: int = 6) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 16))).capitalize() + "."
                     for _ in range(rng.randint(4, 6))]
        out.append(" ".join(sentences))
    return "\n\n".join(out)


def near_copy(original: str, seed: int, share: float = 0.03) -> str:
    """The same text with about ``share`` of its words replaced (estimated Jaccard ~0.8 to the original)."""
    rng = random.Random(seed)
    paragraphs = []
    for paragraph in original.split("\n\n"):
        words = paragraph.split(" ")
        paragraphs.append(" ".join("zebra" if rng.random() < share else w for w in words))
    return "\n\n".join(paragraphs)


def excerpt(original: str) -> str:
    """The first half of the paragraphs: contained in the original."""
    paragraphs = original.split("\n\n")
    return "\n\n".join(paragraphs[: len(paragraphs) // 2])


def page(ident: str, url: str, body: str) -> dict[str, Any]:
    return {"id": ident, "url": url, "title": f"Page {ident}", "text": body}


def base(i: int) -> dict[str, Any]:
    """Base page i: site-a.example, every fifth on news.site-b.example."""
    host = "news.site-b.example" if i % 5 == 4 else "site-a.example"
    return page(f"base-{i}", f"https://{host}/p/{i}", text(i))


def first_run() -> list[dict[str, Any]]:
    """40 base pages, and an exact copy of base 20 at a mirror (a cluster within the run)."""
    return [base(i) for i in range(40)] + [page("mirror-20", "https://mirror.example.net/20", text(20))]


def second_run() -> list[dict[str, Any]]:
    """Copies of the first run's pages (exact 0-4, near 5-9, excerpts 10-12, at the mirror) and 20 new pages."""
    pages = [page(f"exact-{i}", f"https://mirror.example.net/{i}", text(i)) for i in range(5)]
    pages += [page(f"near-{i}", f"https://mirror.example.net/{i}", near_copy(text(i), 100 + i)) for i in range(5, 10)]
    pages += [page(f"teaser-{i}", f"https://teasers.example.org/{i}", excerpt(text(i))) for i in range(10, 13)]
    pages += [page(f"new-{i}", f"https://site-c.example/n/{i}", text(1000 + i)) for i in range(20)]
    return pages


def write_jsonl(path: Path, pages: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(p) + "\n" for p in pages))
    return path


def ingest(source: Path, lake: Path) -> dict[str, Any]:
    from flows.ingest import ingest as run_ingest

    config = IngestConfig.model_validate({"source": str(source), "lake": str(lake), "runner": {"kind": "thread"}})
    return run_ingest(config)


def build_lake(root: Path) -> Path:
    """Two runs: the first run's pages, then the second's (copies across runs)."""
    lake = root / "lake"
    ingest(write_jsonl(root / "run1" / "a.jsonl", first_run()), lake)
    ingest(write_jsonl(root / "run2" / "b.jsonl", second_run()), lake)
    return lake


def copy_lake(lake: Path, target: Path) -> Path:
    shutil.copytree(lake, target)
    return target


def documents(lake: Path) -> list[dict[str, Any]]:
    files = sorted(str(p) for p in (lake / "documents").glob("**/*.parquet"))
    columns = ["doc_id", "url", "dup_cluster", "is_duplicate", "dup_kind", "quality_score", "n_chars",
               "content_hash", "run_id", "text"]
    rows: list[dict[str, Any]] = ds.dataset(files, format="parquet").to_table(columns=columns).to_pylist()
    return sorted(rows, key=lambda r: r["doc_id"])


def by_url(lake: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in documents(lake):
        out.setdefault(row["url"], []).append(row)
    return out


def index_entries(lake: Path) -> dict[str, tuple[str, bool]]:
    """Every live index entry: doc_id -> (dup_cluster, is_duplicate)."""
    index_dir = lake / "_index"
    config = index_config(index_dir)
    assert config is not None
    out = {}
    for segment in LakeIndex.open(index_dir, config).segments:
        for doc_id, cluster, duplicate in zip(segment.doc_ids, segment.clusters, segment.is_duplicate, strict=True):
            out[doc_id.decode()] = (cluster.decode(), bool(duplicate))
    return out


def snapshot(lake: Path) -> dict[str, Any]:
    """What a reader of the lake sees: its documents' decisions, the index's entries, what is blocked, and which
    of the documents' and the blocked doc_ids a run finds known (its units in the lake: skipped)."""
    blocked = Blocklist.load(Store(str(lake)))
    rows = documents(lake)
    ids = sorted({r["doc_id"] for r in rows} | blocked.doc_ids)
    return {
        "documents": [(r["doc_id"], r["dup_cluster"], r["is_duplicate"], r["dup_kind"]) for r in rows],
        "index": sorted(index_entries(lake).items()),
        "blocked": (sorted(blocked.urls), sorted(blocked.domains), sorted(blocked.doc_ids), len(blocked.sizes)),
        "known": [i for i, held in zip(ids, KnownUnits.open(Store(str(lake))).contains(ids).tolist(), strict=True)
                  if held],
    }


def clusters_are_whole(lake: Path) -> None:
    """Every cluster has exactly one kept document, its own cluster id, and the index agrees with the table."""
    rows = documents(lake)
    kept: dict[str, list[str]] = {}
    for r in rows:
        if not r["is_duplicate"]:
            assert r["dup_cluster"] == r["doc_id"], r
            kept.setdefault(r["dup_cluster"], []).append(r["doc_id"])
    for r in rows:
        assert len(kept.get(r["dup_cluster"], [])) == 1, f"cluster {r['dup_cluster']} has no single kept document"
    entries = index_entries(lake)
    for r in rows:
        assert entries[r["doc_id"]] == (r["dup_cluster"], r["is_duplicate"]), r["doc_id"]

"""A small corpus for the lake report's tests: real multilingual pages (trafilatura's evaluation set),
exact, near and contained duplicates, rejects of several reasons, and hostile titles, urls and text."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

HOSTILE_TITLE = "<script>alert(1)</script>"
HOSTILE_URL = "javascript:alert(2)"
HOSTILE_TEXT = '<img src=x onerror="alert(3)"></div><script>alert(4)</script>'
DOMAIN_URL = "https://news.example.co.uk/a/b?c=1"

ARTICLE = [
    "The city council met on Tuesday evening to discuss the future of the old harbour district.",
    "Residents had asked for months for a clear plan on housing, traffic and the green spaces along the water.",
    "The mayor presented three options, each with a different balance between new homes and public parks.",
    "Several members said that the cost estimates were too optimistic and asked for an independent review.",
    "A local shop owner told the meeting that the construction work last year had halved her income.",
    "The harbour authority confirmed that the quay walls need repairs before any building can start there.",
    "Environmental groups welcomed the plan to keep the wetlands but warned about the planned car park.",
    "The council agreed to publish all three options online and to hold two public hearings in spring.",
    "A final decision is expected before the summer break, after the traffic study has been completed.",
    "Until then, the temporary market on the north pier will continue to open every Saturday morning.",
]


def _pages(corpora: Path, count: int) -> list[dict[str, str]]:
    """The first ``count`` pages of trafilatura's evaluation set (several languages), with their URLs."""
    folder = corpora / "trafilatura_eval"
    out = []
    with open(folder / "gold.jsonl", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            raw = (folder / record["html_path"]).read_bytes()
            html = gzip.decompress(raw) if record["html_path"].endswith(".gz") else raw
            out.append({"html": html.decode("utf-8", "replace"), "url": record["url"]})
            if len(out) == count:
                break
    return out


def _article(variant: str = "") -> str:
    sentences = [*ARTICLE]
    if variant:
        sentences[4] = variant
    return "\n\n".join(" ".join(sentences[i:i + 2]) for i in range(0, len(sentences), 2))


def build(root: Path, corpora: Path, pages: int = 24) -> Path:
    """Write the corpus under ``root``; return the folder to ingest."""
    source = root / "source"
    source.mkdir(parents=True)
    lines = [json.dumps(p) for p in _pages(corpora, pages)]
    lines.append(json.dumps({"html": json.loads(lines[0])["html"], "url": json.loads(lines[0])["url"] + "?copy"}))
    lines.append(json.dumps({"text": _article(), "url": "https://harbour.example.org/plan", "title": "Harbour plan"}))
    lines.append(json.dumps({"text": _article(), "url": "https://mirror.example.net/plan", "title": "Harbour copy"}))
    near = "A baker from the old town told the meeting that the roadworks last year had cut her income by half."
    lines.append(json.dumps({"text": _article(near), "url": "https://www.other.example.com/x", "title": "Near"}))
    excerpt = "\n\n".join(" ".join(ARTICLE[i:i + 2]) for i in range(0, 6, 2))
    lines.append(json.dumps({"text": excerpt, "url": "https://teaser.example.org/t", "title": "Teaser"}))
    hostile = ("A strange page about the harbour. " + HOSTILE_TEXT + " " + " ".join(ARTICLE[5:]))
    lines.append(json.dumps({"text": hostile, "url": HOSTILE_URL, "title": HOSTILE_TITLE}))
    lines.append(json.dumps({"text": "Short note on the harbour & the <b>market</b>. " * 3, "url": DOMAIN_URL,
                             "title": "Tom & Jerry <b>bold</b> $x$"}))
    lines.append("{not json")
    lines.append(json.dumps({"id": "no-text"}))
    (source / "pages.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (source / "empty.txt").write_bytes(b"")
    (source / "blob.txt").write_bytes(bytes(range(256)) * 8)
    (source / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return source

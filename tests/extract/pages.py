"""Pages and documents the extract tests feed the stage: an article page, a page too slow for the limit."""

from __future__ import annotations

from flows.document import Document

PARAGRAPHS = [
    "The city council approved the new cycling plan on Monday after a debate that lasted more than four hours.",
    "Supporters said the network of protected lanes would make the streets safer for children going to school.",
    "Opponents argued that the plan would remove too many parking spaces from the busy shopping district.",
    "The first lanes are expected to open next spring, and the whole network should be finished within three years.",
]
TITLE = "Council approves cycling plan"
URL = "https://news.example.org/2024/council-cycling-plan"


def article_page(title: str = TITLE) -> str:
    body = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    return (
        f"<html><head><title>{title} | Example News</title>"
        f'<meta property="og:title" content="{title}">'
        f'<link rel="canonical" href="{URL}"></head>'
        "<body><nav><ul><li><a href='/'>Home</a></li><li><a href='/sport'>Sport</a></li></ul></nav>"
        f"<article><h1>{title}</h1>{body}</article>"
        "<footer><p>Copyright 2024 Example News. All rights reserved.</p><a href='/privacy'>Privacy</a></footer>"
        "</body></html>"
    )


def html_doc(html: str, doc_id: str = "d1", **fields: str) -> Document:
    return Document(doc_id=doc_id, source_uri=f"{doc_id}.html", text=html, kind="html", **fields)  # type: ignore[arg-type]


def slow_page() -> str:
    # An article of 30,000 paragraphs takes seconds to extract: far over the 0.5 s limit below.
    body = "".join(f"<p>{PARAGRAPHS[i % 4]} {i}</p>" for i in range(30_000))
    return f"<html><body><article>{body}</article></body></html>"

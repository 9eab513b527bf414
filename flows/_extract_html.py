"""Main-text extraction from one HTML page: trafilatura, run in the modes that win together.

This module is what the sandbox child process runs; it holds no state between pages, so a page
that has to be killed leaves nothing behind. ``deduplicate=False`` always: trafilatura's
deduplication keeps a module-global cache, which would make a page's output depend on the pages
extracted before it in the same process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import trafilatura
from lxml.html import HtmlElement
from trafilatura.metadata import extract_opengraph, extract_title, extract_url
from trafilatura.utils import load_html

# trafilatura keeps the source's hard line breaks inside a block and their indentation: a line
# that starts with blanks continues the block above it.
_CONTINUATION = re.compile(r"\n[ \t]+(?=\S)")


@dataclass(frozen=True, slots=True)
class HtmlOptions:
    """What the child needs to know; plain values so it pickles cheaply."""

    strategy: str = "combined"
    include_tables: bool = True
    recall_max_ratio: float = 1.5


@dataclass(frozen=True, slots=True)
class HtmlResult:
    """The extracted main text (un-normalized) plus metadata the page states."""

    text: str
    title: str | None
    url: str | None


def _run(tree: HtmlElement, options: HtmlOptions, **mode: bool) -> str:
    # extract() copies a tree it is given, so one parse serves several modes.
    out = trafilatura.extract(
        tree,
        include_comments=False,
        include_tables=options.include_tables,
        deduplicate=False,
        **mode,
    )
    return _CONTINUATION.sub(" ", out) if out else ""


def _main_text(tree: HtmlElement, options: HtmlOptions) -> str:
    if options.strategy == "default":
        return _run(tree, options)
    if options.strategy == "recall":
        return _run(tree, options, favor_recall=True)
    if options.strategy == "precision":
        return _run(tree, options, favor_precision=True)
    if options.strategy == "fast":
        return _run(tree, options, fast=True)
    return _combined(tree, options)


def _combined(tree: HtmlElement, options: HtmlOptions) -> str:
    """favor_recall's text unless it is much longer than the default's (then it caught chrome)."""
    recall = _run(tree, options, favor_recall=True)
    default = _run(tree, options)
    if not default or len(recall) <= options.recall_max_ratio * len(default):
        return recall
    return default


def _metadata(tree: HtmlElement) -> tuple[str | None, str | None]:
    og: dict[str, Any] = extract_opengraph(tree)
    title = og.get("title") or extract_title(tree)
    url = extract_url(tree) or og.get("url")
    return (" ".join(title.split()) or None) if title else None, url or None


def extract_html(html: str, options: HtmlOptions) -> HtmlResult:
    """Extract one page. Returns an empty text when the page has no main content."""
    tree = load_html(html)
    if tree is None:
        return HtmlResult("", None, None)
    title, url = _metadata(tree)
    return HtmlResult(_main_text(tree, options), title, url)

"""Main-text extraction from one HTML page: trafilatura, run in the modes that win together.

This module is what the sandbox child process runs; it holds no state between pages, so a page
that has to be killed leaves nothing behind. ``deduplicate=False`` always: trafilatura's
deduplication keeps a module-global cache, which would make a page's output depend on the pages
extracted before it in the same process.
"""

from __future__ import annotations

import re
from copy import deepcopy
from dataclasses import dataclass
from functools import cache
from typing import Any

import justext
import trafilatura
from justext.core import ParagraphMaker, classify_paragraphs, preprocessor, revise_paragraph_classification
from lxml.html import HtmlElement
from trafilatura.metadata import extract_opengraph, extract_title, extract_url
from trafilatura.utils import load_html

# trafilatura keeps the source's hard line breaks inside a block and their indentation: a line
# that starts with blanks continues the block above it.
_CONTINUATION = re.compile(r"\n[ \t]+(?=\S)")
# The page marks up its article (HTML5 sectioning or schema.org): trafilatura's container search
# is reliable there. Pages without it (older, table-laid-out, multi-post) are where it keeps one
# block of a longer text.
_ARTICLE_MARKUP = re.compile(r"<article\b|<main\b|articlebody", re.IGNORECASE)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class HtmlOptions:
    """What the child needs to know; plain values so it crosses the pipe cheaply."""

    strategy: str = "combined"
    include_tables: bool = True
    justext_min_ratio: float = 1.5
    """``combined``: take justext's text when it is this many times longer than favor_recall's..."""
    justext_min_cover: float = 0.6
    """...and holds at least this share of favor_recall's words (it extends, not replaces, it)."""


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


def _main_text(html: str, tree: HtmlElement, options: HtmlOptions) -> str:
    if options.strategy == "default":
        return _run(tree, options)
    if options.strategy == "recall":
        return _run(tree, options, favor_recall=True)
    if options.strategy == "precision":
        return _run(tree, options, favor_precision=True)
    if options.strategy == "fast":
        return _run(tree, options, fast=True)
    return _combined(html, tree, options)


def _combined(html: str, tree: HtmlElement, options: HtmlOptions) -> str:
    """The measured best per page type (numbers in bench/extraction.py and the issue note).

    * Article markup: ``fast`` mode. trafilatura's fallbacks (readability, justext) only ever add
      text here, mostly teasers and comments; fast scored higher on the marked-up pages of all sets.
    * No markup: ``favor_recall``, replaced by justext's paragraphs when those are much longer and
      contain what trafilatura found: trafilatura kept one block (a first post, one table cell) of
      a page whose main text is spread over several.
    """
    if _ARTICLE_MARKUP.search(html):
        return _run(tree, options, fast=True)
    recall = _run(tree, options, favor_recall=True)
    paragraphs = _justext(tree)
    if not recall.strip():
        return paragraphs
    if len(paragraphs) > options.justext_min_ratio * len(recall) and _cover(recall, paragraphs) >= options.justext_min_cover:
        return paragraphs
    return recall


@cache
def _stoplist() -> frozenset[str]:
    # Stop words of every language justext knows: language-independent, like trafilatura's rescue.
    return frozenset(w.lower() for lang in justext.get_stoplists() for w in justext.get_stoplist(lang))


def _justext(tree: HtmlElement) -> str:
    """justext's good paragraphs, one per line (it rates blocks by stop-word and link density)."""
    paragraphs = ParagraphMaker.make_paragraphs(preprocessor(deepcopy(tree)))
    classify_paragraphs(paragraphs, _stoplist())
    revise_paragraph_classification(paragraphs)
    return "\n".join(p.text for p in paragraphs if not p.is_boilerplate)


def _cover(part: str, whole: str) -> float:
    """Share of the words of ``part`` that occur in ``whole``."""
    words = _WORD.findall(part.lower())
    vocabulary = set(_WORD.findall(whole.lower()))
    return sum(w in vocabulary for w in words) / len(words) if words else 1.0


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
    return HtmlResult(_main_text(html, tree, options), title, url)

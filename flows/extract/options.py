"""What crosses between the extract stage and the extraction process: plain values, no heavy imports.

Kept apart from ``flows.extract.html_modes`` so that a process which only hands pages to the sandbox
(a flow worker) never imports trafilatura, justext and lxml's HTML machinery (~30 MB each).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HtmlOptions:
    """What the child needs to know; plain values so it crosses the pipe cheaply."""

    strategy: str = "combined"
    include_tables: bool = True
    markup_fast: bool = True
    """``combined``: pages with article markup take the text of ``markup_mode`` (else the rules for pages
    without markup)..."""
    markup_mode: str = "fast"
    """...``fast`` (a short text is checked against the default mode's, below), or ``default``."""
    justext_min_ratio: float = 1.5
    """``combined``: take justext's text when it is this many times longer than favor_recall's..."""
    justext_min_cover: float = 0.6
    """...and holds at least this share of favor_recall's words (it extends, not replaces, it)."""
    justext_min_chars: int = 200
    """Where trafilatura finds nothing, justext's text must be this long to count as main text."""
    short_text_chars: int = 1000
    """``combined``, pages with article markup: a fast-mode text shorter than this is checked..."""
    short_text_ratio: float = 1.1
    """...against the default mode's, which replaces it when this many times longer."""
    default_page_share: float = 0.5
    """``combined``, pages without markup: the default mode's text is taken as it is when it holds at
    least this share of the page's text..."""
    recall_default_share: float = 0.8
    """...else, where favor_recall's text is kept, the default mode's replaces it when at least this
    share of its length."""


@dataclass(frozen=True, slots=True)
class HtmlResult:
    """The extracted main text (un-normalized) plus metadata the page states."""

    text: str
    title: str | None
    url: str | None

"""The HTML extraction knobs, declared once, and what crosses between the extract stage and the extraction process.

Kept apart from ``flows.extract.html_modes`` so that a process which only hands pages to the sandbox
(a flow worker) never imports trafilatura, justext and lxml's HTML machinery (~30 MB each).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Strategy = Literal["combined", "default", "recall", "precision", "fast"]


class HtmlKnobs(BaseModel):
    """The knobs of HTML extraction: settings of ``ExtractConfig``, handed to the child as ``HtmlOptions``."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    strategy: Strategy = "combined"
    """``combined``: per page, trafilatura ``fast`` where the page marks up its article, else the default
    mode's text where it holds much of the page, or ``favor_recall`` (justext's text where it finds much
    more, the default mode's where that is nearly as long); the others: one stock mode each."""
    include_tables: bool = True
    """Keep tables that belong to the article (as ``| cell | cell |`` rows)."""
    justext_min_ratio: float = Field(default=1.5, gt=0)
    """``combined``, pages without article markup: take justext's text over favor_recall's when it is
    this many times longer..."""
    justext_min_cover: float = Field(default=0.6, ge=0, le=1)
    """...and contains at least this share of favor_recall's words."""
    justext_min_chars: int = Field(default=200, ge=0)
    """``combined``: where trafilatura finds no text, justext's must be this many characters to count."""
    short_text_chars: int = Field(default=1000, ge=0)
    """``combined``, pages with article markup: a fast-mode text shorter than this is compared with
    the default mode's..."""
    short_text_ratio: float = Field(default=1.1, gt=0)
    """...which replaces it when it is this many times longer."""
    default_page_share: float = Field(default=0.5, ge=0)
    """``combined``, pages without article markup: the default mode's text is taken as it is when it
    holds at least this share of the page's text (favor_recall and justext are then skipped)..."""
    recall_default_share: float = Field(default=0.8, ge=0)
    """...else, where favor_recall's text is kept, the default mode's replaces it when at least this
    share of its length (favor_recall's extra is then chrome)."""


class HtmlOptions(HtmlKnobs):
    """What the child needs to know: the knobs, and two switches of the ``combined`` rules that only the
    extraction bench's cross-validation turns (the stage always runs them as they are here)."""

    markup_fast: bool = True
    """``combined``: pages with article markup take the text of ``markup_mode`` (else the rules for pages
    without markup)..."""
    markup_mode: Literal["fast", "default"] = "fast"
    """...``fast`` (a short text is checked against the default mode's, see ``short_text_chars``), or
    ``default``."""

    @classmethod
    def of(cls, knobs: HtmlKnobs) -> HtmlOptions:
        """The options a config's knobs give (the two switches as they are here)."""
        return cls(**{name: getattr(knobs, name) for name in HtmlKnobs.model_fields})


@dataclass(frozen=True, slots=True)
class HtmlResult:
    """The extracted main text (un-normalized) plus metadata the page states."""

    text: str
    title: str | None
    url: str | None

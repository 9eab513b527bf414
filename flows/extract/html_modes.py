"""Main-text extraction from one HTML page: trafilatura, run in the modes that win together.

This module is what the sandbox child process runs; it holds no state between pages, so a page
that has to be killed leaves nothing behind. ``deduplicate=False`` always: trafilatura's
deduplication keeps a module-global cache, which would make a page's output depend on the pages
extracted before it in the same process.
"""

from __future__ import annotations

import re
from functools import cache, cached_property
from typing import Any, Protocol

import justext
import trafilatura
import trafilatura.utils
from justext.core import (
    ParagraphMaker,
    PathInfo,
    classify_paragraphs,
    preprocessor,
    revise_paragraph_classification,
)
from justext.paragraph import Paragraph
from justext.utils import normalize_whitespace
from lxml import etree
from lxml.html import HtmlComment, HtmlElement, HtmlEntity, HtmlProcessingInstruction
from trafilatura.metadata import extract_opengraph, extract_title, extract_url
from trafilatura.utils import load_html

from flows.extract.options import HtmlOptions, HtmlResult

__all__ = ["Candidates", "HtmlOptions", "HtmlResult", "choose", "extract_html", "page_candidates", "warm_up"]

# trafilatura keeps the source's hard line breaks inside a block and their indentation: a line
# that starts with blanks continues the block above it.
_CONTINUATION = re.compile(r"\n[ \t]+(?=\S)")
# The page marks up its article (HTML5 sectioning or schema.org): trafilatura's container search
# is reliable there. Pages without it (older, table-laid-out, multi-post) are where it keeps one
# block of a longer text.
_ARTICLE_MARKUP = re.compile(r"<article\b|<main\b|articlebody", re.IGNORECASE)
# Under IGNORECASE, "i" also matches these two; lower() turns the first into two characters.
_DOTTED_I = ("\u0130", "\u0131")
_WORD = re.compile(r"\w+")
# What a document has and a fragment lacks.
_DOCUMENT_MARKUP = re.compile(r"<(?:html|head|body|!doctype|\?xml)\b", re.IGNORECASE)


def _plain_element_classes() -> None:
    """Parse pages into plain ``HtmlElement`` nodes, looked up in C.

    lxml.html's parser asks a Python method which class each node gets (``FormElement``, ``InputElement``...)
    every time a node is touched from Python: 7 million calls on the 1,648 gold pages. trafilatura and justext use
    none of those classes' form helpers, only ``HtmlElement``'s. The same text on every gold page, 4% less CPU a
    page (``tests/extract/test_html_modes.py``). Set on trafilatura's own parser, when this module is imported:
    a process imports it to extract (the extraction process, or a worker extracting in-process), and
    trafilatura's parser serves nothing else there.
    """
    lookup = etree.ElementDefaultClassLookup(
        element=HtmlElement, comment=HtmlComment, pi=HtmlProcessingInstruction, entity=HtmlEntity)
    trafilatura.utils.HTML_PARSER.set_element_class_lookup(lookup)


_plain_element_classes()


def _run(
    tree: HtmlElement, options: HtmlOptions, *, fast: bool = False, recall: bool = False, precision: bool = False
) -> str:
    """One trafilatura mode's text of the parsed page (hard line breaks inside a block folded)."""
    # extract() copies a tree it is given, so one parse serves several modes.
    out = trafilatura.extract(
        tree,
        include_comments=False,
        include_tables=options.include_tables,
        deduplicate=False,
        fast=fast,
        favor_recall=recall,
        favor_precision=precision,
    )
    return _CONTINUATION.sub(" ", out) if out else ""


def _main_text(html: str, tree: HtmlElement, options: HtmlOptions) -> str:
    """The page's main text by the configured strategy: one stock mode, or the ``combined`` rules."""
    if options.strategy == "default":
        return _run(tree, options)
    if options.strategy == "recall":
        return _run(tree, options, recall=True)
    if options.strategy == "precision":
        return _run(tree, options, precision=True)
    if options.strategy == "fast":
        return _run(tree, options, fast=True)
    return _combined(html, tree, options)


def _combined(html: str, tree: HtmlElement, options: HtmlOptions) -> str:
    """The ``combined`` rules' choice for one page."""
    return choose(_PageCandidates(html, tree, options), options)


class Candidates(Protocol):
    """What the ``combined`` rules choose from: each mode's text of one page, and measures of the page.

    ``_PageCandidates`` computes each only when a rule asks for it; ``bench/extraction.py`` caches all
    of them once per gold page, to choose and cross-validate the rules offline with the same ``choose``.
    """

    @property
    def has_markup(self) -> bool: ...
    @property
    def fast(self) -> str: ...
    @property
    def default(self) -> str: ...
    @property
    def recall(self) -> str: ...
    @property
    def justext(self) -> str:
        """justext's paragraphs; asked for last (justext consumes the tree)."""
    @property
    def page_chars(self) -> int: ...
    @property
    def cover(self) -> float:
        """Share of favor_recall's words that justext's text holds."""


class _PageCandidates:
    """``Candidates`` of one parsed page, each computed on first use."""

    def __init__(self, html: str, tree: HtmlElement, options: HtmlOptions) -> None:
        self._html, self._tree, self._options = html, tree, options

    @cached_property
    def has_markup(self) -> bool:
        return has_article_markup(self._html)

    @cached_property
    def fast(self) -> str:
        return _run(self._tree, self._options, fast=True)

    @cached_property
    def default(self) -> str:
        return _run(self._tree, self._options)

    @cached_property
    def recall(self) -> str:
        return _run(self._tree, self._options, recall=True)

    @cached_property
    def justext(self) -> str:
        return _justext(self._tree)

    @cached_property
    def page_chars(self) -> int:
        return _page_text_length(self._tree)

    @cached_property
    def cover(self) -> float:
        return _cover(self.recall, self.justext)


def choose(page: Candidates, options: HtmlOptions) -> str:
    """The measured best per page type (bench/extraction.py; dev-set F1 in the comments).

    * Article markup: ``fast`` mode. On marked-up pages trafilatura's fallbacks (readability,
      justext) mostly add teasers and comments: fast beat default there on scrapinghub (0.975 vs
      0.964) and mozilla (0.952 vs 0.941), tied on the portals, lost on trafilatura_eval (0.919 vs
      0.925), and costs ~0.6x default. Short fast results get a second look (see below).
    * No markup: the default mode where its text holds much of the page; else ``favor_recall``,
      replaced by justext's paragraphs when those are much longer and contain what trafilatura found
      (trafilatura kept one block, a first post or one table cell, of a page whose main text is spread
      over several: cleaneval 0.870 -> 0.903), or by the default mode's text when that is nearly as
      long (see ``_without_markup``).
    """
    if page.has_markup and options.markup_fast:
        if options.markup_mode == "default":
            return page.default if page.default.strip() else page.fast
        fast = page.fast
        if len(fast) >= options.short_text_chars:
            return fast
        # A short result may be a stub of the article (a teaser box, a first paragraph): the full
        # cascade's text replaces it when longer. trafilatura_eval +0.003 (500 chars and 3x: +0.001).
        full = page.default
        return full if len(full) > options.short_text_ratio * len(fast) else fast
    return _without_markup(page, options)


def _without_markup(page: Candidates, options: HtmlOptions) -> str:
    """The default mode's text where it holds much of the page, else favor_recall's, or justext's where
    that holds much more, or the default mode's again where it is nearly as long as favor_recall's.

    What favor_recall adds to a default text nearly as long is mostly chrome (related links, a legal
    line), while a much shorter default text has missed part of the article. With the short-``fast``
    rule for marked-up pages, over favor_recall alone here: trafilatura_eval 0.9195 -> 0.9253 (false-
    positive snippets on these pages 75 -> 56), cleaneval 0.8937 -> 0.8878, the other sets above target.
    """
    default = page.default
    if default.strip() and len(default) >= options.default_page_share * page.page_chars:
        # Much of the page is article: favor_recall and justext are skipped. At 0.8 of the page this
        # would change nothing (no extractor finds more than the page holds, so favor_recall's text
        # would lose to this one); 0.5 skips them on 64% of the gold pages without markup instead of
        # 46%, for 0.005 of cleaneval's F1: 0.78x -> 0.82x stock default's pages a second.
        return default
    recall = page.recall
    chosen = default if default.strip() and len(default) >= options.recall_default_share * len(recall) else recall
    if recall.strip() and page.page_chars <= options.justext_min_ratio * len(recall):
        return chosen  # justext cannot find that much more text: skip it (it costs as much as trafilatura)
    paragraphs = page.justext
    if not recall.strip():
        # trafilatura found nothing; justext's paragraphs count only if they make a text.
        return paragraphs if len(paragraphs) >= options.justext_min_chars else chosen
    longer = len(paragraphs) > options.justext_min_ratio * len(recall)
    return paragraphs if longer and page.cover >= options.justext_min_cover else chosen


def has_article_markup(html: str) -> bool:
    """``_ARTICLE_MARKUP.search(html) is not None``, faster: the case-insensitive regex tries every position of a
    page, substring searches of the lower-cased page do not. On the gold pages 0.40 -> 0.07 ms an ASCII page,
    0.89 -> 0.50 ms another (lower-casing those costs most). The regex is kept for pages with a dotted or dotless
    i, the one letter whose case variants lower() does not give one for one."""
    if any(char in html for char in _DOTTED_I):
        return _ARTICLE_MARKUP.search(html) is not None
    low = html.lower()
    return "articlebody" in low or _tag_in(low, html, "<article") or _tag_in(low, html, "<main")


def _tag_in(low: str, html: str, opening: str) -> bool:
    """Whether ``opening`` occurs in ``low`` (``html`` lower-cased, same length) followed by no word character."""
    start = low.find(opening)
    while start >= 0:
        after = start + len(opening)
        if after == len(html) or not (html[after].isalnum() or html[after] == "_"):  # regex's \b after a letter
            return True
        start = low.find(opening, start + 1)
    return False


def _page_text_length(tree: HtmlElement) -> int:
    """An upper bound on any extractor's output: all text of the body, whitespace folded."""
    body = tree.find(".//body")
    text = (body if body is not None else tree).text_content()
    return len(" ".join(text.split()))


@cache
def _stoplist() -> frozenset[str]:
    """Stop words of every language justext knows: language-independent, like trafilatura's rescue."""
    return frozenset(w.lower() for lang in justext.get_stoplists() for w in justext.get_stoplist(lang))


class _OpenedParagraph(Paragraph):  # type: ignore[misc]
    """A justext paragraph that formats its element path only when asked. justext opens a paragraph at
    every block tag and most stay empty; formatting each one's path (dom and xpath strings) made
    ``_justext`` 6.8 instead of 5.9 ms a page on cleaneval. The path is copied as it is when the
    paragraph opens, as justext does."""

    def __init__(self, path: PathInfo) -> None:  # Paragraph.__init__ minus the two path strings
        self.path_elements = path._elements.copy()
        self.text_nodes: list[str] = []
        self.chars_count_in_links = 0
        self.tags_count = 0
        self.class_type = ""

    @cached_property
    def dom_path(self) -> str:
        return ".".join(element[0] for element in self.path_elements)

    @cached_property
    def xpath(self) -> str:
        return "/" + "/".join(f"{element[0]}[{element[1]}]" for element in self.path_elements)


class _ParagraphMaker(ParagraphMaker):  # type: ignore[misc]
    paragraph: Paragraph | None

    def _start_new_pragraph(self) -> None:  # (sic) justext's name
        if self.paragraph and self.paragraph.contains_text():
            self.paragraphs.append(self.paragraph)
        self.paragraph = _OpenedParagraph(self.path)


class _FrozenParagraph(_OpenedParagraph):
    """A justext paragraph whose text is computed once: justext re-derives it on every access,
    which made classification cost as much as trafilatura itself."""

    @cached_property
    def text(self) -> str:
        return str(normalize_whitespace("".join(self.text_nodes).strip()))


def _justext(tree: HtmlElement) -> str:
    """justext's good paragraphs, one per line (it rates blocks by stop-word and link density).

    Consumes ``tree`` (justext's preprocessor strips it in place): call it last.
    """
    _drop_sharing_boxes(tree)
    paragraphs = _ParagraphMaker.make_paragraphs(preprocessor(tree))
    for paragraph in paragraphs:
        paragraph.__class__ = _FrozenParagraph  # made and filled by now: its text no longer changes
    classify_paragraphs(paragraphs, _stoplist())
    revise_paragraph_classification(paragraphs)
    kept = [p.text for p in paragraphs if not p.is_boilerplate]
    while kept and _LEGAL_NOTICE.search(kept[-1]):  # the site's legal notice closes the page, not the article
        kept.pop()
    return "\n".join(kept)


def _drop_sharing_boxes(tree: HtmlElement) -> None:
    """Remove share bars, newsletter sign-ups and footers, known by their tag, class or id: justext judges a
    block by its words alone, and "Sign up for our newsletter. Enter your email address." reads like prose.
    (Pruning all of trafilatura's boilerplate classes instead cost 0.005 F1 on cleanportaleval.)"""
    boxes = [el for el in tree.iter() if isinstance(el.tag, str) and el.tag in _BOX_TAGS
             and (el.tag == "footer" or _SHARING_BOX.search(f"{el.get('class', '')} {el.get('id', '')}"))]
    for box in boxes:
        if box.getparent() is not None:
            box.drop_tree()


# A legal notice, not a sentence about copyright: a year or "all rights reserved" goes with the word.
# Stricter than ``flows.extract.chrome``'s copyright test, which only ever judges short lines: this one can
# remove a whole closing paragraph.
_LEGAL_NOTICE = re.compile(r"©|\(c\)\s*\d{4}|\bcopyright\s*(?:©|\(c\))?\s*\d{4}|\ball rights reserved\b", re.IGNORECASE)
_BOX_TAGS = frozenset(["div", "aside", "section", "form", "ul", "p", "footer"])
_SHARING_BOX = re.compile(
    r"newsletter|subscri|social|footer|(?:^|[\s_-])(?:share|sharing)(?:$|[\s_-]|bar|box|buttons?|links?|tools?|icons?)",
    re.IGNORECASE,
)


def _cover(part: str, whole: str) -> float:
    """Share of the words of ``part`` that occur in ``whole``."""
    words = _WORD.findall(part.lower())
    vocabulary = set(_WORD.findall(whole.lower()))
    return sum(w in vocabulary for w in words) / len(words) if words else 1.0


def _metadata(tree: HtmlElement) -> tuple[str | None, str | None]:
    """The title and canonical URL the page states (OpenGraph first), whitespace folded."""
    og: dict[str, Any] = extract_opengraph(tree)
    title = og.get("title") or extract_title(tree)
    url = extract_url(tree) or og.get("url")
    return (" ".join(title.split()) or None) if title else None, url or None


def warm_up() -> None:
    """Pay the one-time costs (stop-word lists, trafilatura's lazy setup) up front."""
    _stoplist()
    extract_html("<html><body><article><p>warm up</p></article></body></html>", HtmlOptions())


def _parse(html: str) -> tuple[str, HtmlElement] | None:
    """The page's markup and tree, or None when trafilatura finds no tree in it."""
    tree = load_html(html)
    if tree is None and not _DOCUMENT_MARKUP.search(html):
        # trafilatura refuses a fragment whose tree has a single block (a JSONL ``html`` field holding
        # one <p>, say): read it as the same markup inside a document.
        html = f"<html><body>{html}</body></html>"
        tree = load_html(html)
    return None if tree is None else (html, tree)


def extract_html(html: str, options: HtmlOptions) -> HtmlResult:
    """Extract one page. Returns an empty text when the page has no main content."""
    parsed = _parse(html)
    if parsed is None:
        return HtmlResult("", None, None)
    html, tree = parsed
    title, url = _metadata(tree)
    _drop_hidden(tree)
    return HtmlResult(_main_text(html, tree, options), title, url)


def page_candidates(html: str, options: HtmlOptions) -> Candidates | None:
    """The ``combined`` rules' candidates of one page, parsed as ``extract_html`` parses it (None: no tree).
    For ``bench/extraction.py``, which caches every candidate of every gold page to fit the rules offline."""
    parsed = _parse(html)
    if parsed is None:
        return None
    html, tree = parsed
    _drop_hidden(tree)
    return _PageCandidates(html, tree, options)


# Elements a browser does not show (the ``hidden`` attribute, an inline display:none or
# visibility:hidden) or that the page hides from screen readers (aria-hidden): not what a reader reads.
_HIDDEN_CANDIDATES = etree.XPath("//*[@style or @hidden or @aria-hidden]")  # the simplest XPath is the fastest
_HIDING_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
# A page that hides most of its text (until a script shows it) keeps its hidden parts.
_HIDDEN_MAX_SHARE = 0.8
# Shorter hidden text (icons, labels, a collapsed menu) is dropped without measuring the page: as
# ``HtmlOptions.justext_min_chars``, the length below which a text does not count as a main text.
_MAIN_TEXT_MIN_CHARS = 200


def _drop_hidden(tree: HtmlElement) -> None:
    """Remove hidden elements, as Readability does. Gold F1 (bench/extraction.py): mozilla_readability
    0.9494 -> 0.9546, trafilatura_eval +0.0004, cleaneval +0.0002, the other sets unchanged."""
    hidden = [el for el in _HIDDEN_CANDIDATES(tree)
              if el.get("hidden") is not None or el.get("aria-hidden") == "true"
              or _HIDING_STYLE.search(el.get("style", ""))]
    marked = set(hidden)
    outermost = [el for el in hidden if not any(up in marked for up in el.iterancestors())]
    if not outermost:
        return
    hidden_chars = sum(len(" ".join(el.text_content().split())) for el in outermost)
    # Measuring the page costs ~0.4 ms: only worth it when the hidden text could be a main text.
    if hidden_chars >= _MAIN_TEXT_MIN_CHARS and hidden_chars > _HIDDEN_MAX_SHARE * _page_text_length(tree):
        return
    for el in outermost:
        el.drop_tree()

"""The extract stage: main text out of HTML pages, chrome lines out of plain text.

HTML goes through trafilatura (see ``flows.extract.html_modes`` for the combination of modes that
measured best on the gold sets, ``bench/extraction.py`` for the numbers) inside a child process
with a per-page time limit (``flows.extract.sandbox``), so one pathological page becomes a
reject and the shard goes on. Plain text goes through ``flows.extract.chrome``. Both come out through
``normalize_text``: NFC, paragraphs separated by exactly one blank line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from flows.document import Document, Reject, reject
from flows.extract.chrome import headline, strip_chrome
from flows.extract.options import HtmlKnobs, HtmlOptions, HtmlResult
from flows.extract.sandbox import ExtractTimeout, Sandbox, SandboxError, discard_for_thread, for_thread
from flows.normalize import normalize_text

STAGE = "extract"


class _Sandboxing(BaseModel):
    """The per-page limit and the process that enforces it (first among ``ExtractConfig``'s fields)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    timeout_s: float = Field(default=10.0, gt=0)
    """Per-page limit for HTML extraction; a page over it becomes an ``extract_timeout`` reject."""
    sandbox: bool = True
    """Extract HTML in a child process so ``timeout_s`` can be enforced (off: in-process, no limit)."""


class ExtractConfig(HtmlKnobs, _Sandboxing):
    """Knobs of the extract stage; the defaults are the best measured by ``bench/extraction.py``.

    The HTML knobs are declared once, in ``HtmlKnobs``; the bases in this order keep the fields in the
    order they always had (``timeout_s``, ``sandbox``, the HTML knobs, ``strip_text_chrome``).
    """

    strip_text_chrome: bool = True
    """Remove chrome lines (share bars, captions, bylines, counters) from plain-text inputs."""


def _extract_html(doc: Document, config: ExtractConfig, sandbox: Sandbox | None) -> HtmlResult:
    """The page's result: from the sandbox it was submitted to, or extracted here and now."""
    if sandbox is not None:
        return sandbox.result(config.timeout_s)
    from flows.extract.html_modes import extract_html  # in-process: only now is trafilatura needed

    return extract_html(doc.text, HtmlOptions.of(config))


# libxml2, which trafilatura parses with, keeps 255 levels of nesting and text nodes up to 10 MB.
_LIBXML_MAX_DEPTH = 255
_LIBXML_MAX_TEXT_BYTES = 10_000_000
_TAG = re.compile(r"<(/?)([A-Za-z][^\s/>]*)[^>]*?(/?)>")
# Elements that never nest in practice: void elements, and those a parser closes implicitly.
_FLAT_TAGS = frozenset([
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr",
    "p", "li", "dt", "dd", "tr", "td", "th", "option",
])


def _nesting_depth(html: str) -> int:
    """How deep the page nests elements, counting only tags that can nest."""
    depth = deepest = 0
    for closing, name, self_closing in _TAG.findall(html):
        if name.lower() in _FLAT_TAGS or self_closing:
            continue
        depth = max(depth - 1, 0) if closing else depth + 1
        deepest = max(deepest, depth)
    return deepest


def _why_no_text(html: str) -> tuple[str, str]:
    """The reject reason for an HTML page that gave no text: a parser limit it hit, or no content."""
    depth = _nesting_depth(html)
    if depth > _LIBXML_MAX_DEPTH:
        return "html_too_deep", (f"The page nests elements {depth} levels deep; the HTML parser keeps "
                                 f"{_LIBXML_MAX_DEPTH}, so the text below that is lost.")
    # Only runs that could be over the limit are encoded (UTF-8 takes at most 4 bytes a character).
    longest = max((len(run.encode()) for run in html.split("<") if len(run) * 4 > _LIBXML_MAX_TEXT_BYTES), default=0)
    if longest > _LIBXML_MAX_TEXT_BYTES:
        return "html_text_too_large", ("A single run of text is over the HTML parser's 10,000,000-byte "
                                       "limit for one text node; split it into paragraphs.")
    return "no_main_content", "The page has no main text that trafilatura could find."


def _extract_one(doc: Document, config: ExtractConfig, sandbox: Sandbox | None) -> Document | Reject:
    """Extract one document in place, or say why it cannot be."""
    if doc.kind == "html":
        result = _extract_html(doc, config, sandbox)
        text = normalize_text(result.text)
        if doc.title is None and result.title:
            doc.title = result.title
        if doc.url is None and result.url:
            doc.url = result.url
        if not text:
            return reject(doc, STAGE, *_why_no_text(doc.text))
    else:
        raw = normalize_text(doc.text)
        text = normalize_text(strip_chrome(raw, doc.title)) if config.strip_text_chrome else raw
        doc.title = doc.title or headline(text)
        if not text:
            return reject(doc, STAGE, "no_main_content", "The text is empty once chrome lines are removed.")
    doc.text = text
    return doc


@dataclass
class StartedExtraction:
    """A batch whose HTML pages are queued in this thread's extraction process (``start_extraction``)."""

    docs: list[Document]
    config: ExtractConfig
    sandbox: Sandbox | None


def start_extraction(docs: list[Document], config: ExtractConfig) -> StartedExtraction:
    """Queue the batch's HTML pages in this thread's extraction process and return at once: the pages are
    extracted while the caller does other work; ``finish_extraction`` collects them (same thread)."""
    sandbox = for_thread() if config.sandbox else None
    if sandbox is not None:
        options = HtmlOptions.of(config)
        for doc in docs:
            if doc.kind == "html":
                sandbox.submit(doc.text, options)
    return StartedExtraction(docs, config, sandbox)


def finish_extraction(started: StartedExtraction) -> tuple[list[Document], list[Reject]]:
    """Each document's main text (see ``extract_batch``), in the order the batch was started."""
    kept: list[Document] = []
    rejects: list[Reject] = []
    config = started.config
    for doc in started.docs:
        try:
            out = _extract_one(doc, config, started.sandbox)
        except ExtractTimeout:
            out = reject(doc, STAGE, "extract_timeout", f"Extraction took longer than {config.timeout_s:g} s.")
        except SandboxError as err:
            out = reject(doc, STAGE, "extract_error", f"Extraction failed: {err}.")
        except Exception as err:  # a bad document must never stop the shard
            out = reject(doc, STAGE, "extract_error", f"Extraction failed: {type(err).__name__}: {err}.")
        if isinstance(out, Document):
            kept.append(out)
        else:
            rejects.append(out)
    return kept, rejects


def abandon_extraction() -> None:
    """Drop the pages this thread queued and will not collect (its shard failed midway), so the next
    batch's results are its own."""
    discard_for_thread()


def extract_batch(docs: list[Document], config: ExtractConfig) -> tuple[list[Document], list[Reject]]:
    """Extract each document's main text; a document that fails becomes a ``Reject``, never an exception.

    ``kind == "html"``: main-text extraction of ``doc.text`` (the decoded HTML); sets ``doc.title`` and
    ``doc.url`` when they are None and the page states them. ``kind == "text"``: chrome lines removed.
    Reasons: ``no_main_content`` (nothing left), ``extract_timeout`` (over ``config.timeout_s``),
    ``extract_error`` (anything else, with the exception in the detail).
    """
    return finish_extraction(start_extraction(docs, config))

"""Text normalization: Unicode NFC, mojibake repair, invisible characters, whitespace, paragraphs.

``normalize_chars`` fixes characters only and is safe on HTML before extraction;
``normalize_text`` also lays the text out as paragraphs separated by exactly one blank line.
Both are idempotent: normalizing twice gives the same text as normalizing once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import ftfy

from flows.document import Document

# Keep typographic quotes and full-width forms: they are content, not damage (datatrove does the same).
_FTFY = ftfy.TextFixerConfig(
    unescape_html=False,
    uncurl_quotes=False,
    fix_character_width=False,
    fix_latin_ligatures=False,
    normalization="NFC",
    explain=False,
)
# C0/C1 controls except tab and newline, zero-width and bidi-override characters, BOM, soft hyphen.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)
_LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029\x85]")
_INLINE_SPACE = re.compile(r"[^\S\n]+")
_TERMINAL = tuple('.!?:;"”’)»]…')
# Hard-wrapped prose: a line this long that does not end a sentence, followed by a lowercase start.
_WRAP_MIN_CHARS = 40
# Normalizing passes until the text is stable (two are almost always enough).
_MAX_PASSES = 4


def _fixpoint(step: Callable[[str], str], text: str) -> str:
    """Apply ``step`` until the text stops changing (a repair can reveal another, e.g. mojibake once
    whitespace is folded), so that normalizing is idempotent; at most ``_MAX_PASSES`` times."""
    for _ in range(_MAX_PASSES):
        fixed = step(text)
        if fixed == text:
            break
        text = fixed
    return text


def _chars_once(text: str) -> str:
    text = _LINE_BREAKS.sub("\n", text)
    text = _INVISIBLE.sub("", text)
    if not text.isascii():
        text = ftfy.fix_text(text, _FTFY)
        text = _INVISIBLE.sub("", text)
    return unicodedata.normalize("NFC", text)


def normalize_chars(text: str) -> str:
    """Repair mojibake, apply NFC, drop control/zero-width/bidi characters; layout untouched."""
    return _fixpoint(_chars_once, text)


def _paragraphs(text: str) -> list[str]:
    """Split into paragraphs: each non-empty line is one, except hard-wrapped continuation lines."""
    paragraphs: list[str] = []
    joinable = False
    for raw_line in text.split("\n"):
        line = _INLINE_SPACE.sub(" ", raw_line).strip()
        if not line:
            joinable = False
            continue
        if joinable and line[0].islower():
            paragraphs[-1] = f"{paragraphs[-1]} {line}"
        else:
            paragraphs.append(line)
        last = paragraphs[-1]
        joinable = len(line) >= _WRAP_MIN_CHARS and not last.endswith(_TERMINAL)
    return paragraphs


def _text_once(text: str) -> str:
    return "\n\n".join(_paragraphs(normalize_chars(text)))


def normalize_text(text: str) -> str:
    """Normalize characters and lay out paragraphs separated by exactly one blank line."""
    return _fixpoint(_text_once, text)


def normalize_batch(docs: list[Document]) -> list[Document]:
    """Normalize a shard in place: full layout for text, characters only for HTML (layout is markup)."""
    for doc in docs:
        doc.text = normalize_text(doc.text) if doc.kind == "text" else normalize_chars(doc.text)
    return docs

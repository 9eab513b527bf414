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
import ftfy.chardata
import ftfy.fixes
from ftfy.badness import BADNESS_RE

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
# What is removed once ftfy has run: C0/C1 controls except tab and newline (ftfy maps the C1 controls
# of mojibake to the characters they stood for, so those that are left are damage), zero-width and
# bidi-override characters, BOM, soft hyphen.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)
_LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029\x85]")
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


# Characters one of ftfy's enabled steps acts on besides mojibake: line breaks, C1 controls, surrogates,
# and the control characters ftfy removes (ESC among them: terminal escapes). A line with none of them,
# no mojibake, and already NFC, ftfy returns unchanged.
_FTFY_ACTS_ON = re.compile(
    "[\r\x80-\x9f\u2028\u2029\ud800-\udfff"
    + "".join(re.escape(chr(code)) for code in sorted(ftfy.chardata.CONTROL_CHARS))
    + "]"
)
# Runs of non-ASCII characters: where ftfy may have mojibake to repair.
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
# Where ftfy may have work at all: non-ASCII characters, or ESC (the start of a terminal escape). On
# an ASCII line without ESC, ftfy only unifies line breaks and drops control characters, which
# ``_chars_once`` does after it anyway.
_FTFY_WORK = re.compile(r"[^\x00-\x1a\x1c-\x7f]")
# Lines holding a C1 control character: mojibake of UTF-8 read as Latin-1 that an HTML parser would drop.
_C1_CHARS = frozenset(map(chr, range(0x80, 0xA0)))
_C1_LINE = re.compile("^.*[\x80-\x9f].*$", re.MULTILINE)


def _fix_text(text: str) -> str:
    """``ftfy.fix_text(text, _FTFY)``, several times faster on long texts, same result.

    ftfy fixes a text line by line, and a line it has nothing to do on comes back unchanged: a line
    without a non-ASCII character or ESC (see ``_FTFY_WORK``: what ftfy does there is done after it),
    or a line without mojibake, without a character another enabled step acts on, and already NFC.
    Only the other lines go through it.
    """
    out: list[str] = []
    pos = 0
    while match := _FTFY_WORK.search(text, pos):
        start = max(pos, text.rfind("\n", pos, match.start()) + 1)
        end = text.find("\n", match.start()) + 1 or len(text)
        line = text[start:end]
        out += [text[pos:start], line if _ftfy_leaves(line) else ftfy.fix_text(line, _FTFY)]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _ftfy_leaves(line: str) -> bool:
    return (len(line) <= _FTFY.max_decode_length and not _FTFY_ACTS_ON.search(line)
            and unicodedata.is_normalized("NFC", line) and not _looks_bad(line))


# Every pattern of ftfy's mojibake test (``BADNESS_RE``) holds a non-ASCII character and spans at most
# 7 characters, so a match lies within 6 characters of a non-ASCII run.
_BADNESS_REACH = 6


def _looks_bad(line: str) -> bool:
    """``ftfy.badness.is_bad(line)``, testing only the stretches around non-ASCII runs: 4-5x faster on
    prose whose only non-ASCII characters are a few quotes and dashes."""
    start = end = -1
    for run in _NON_ASCII_RUN.finditer(line):
        near_start, near_end = max(run.start() - _BADNESS_REACH, 0), run.end() + _BADNESS_REACH
        if near_start <= end:  # overlaps the stretch being gathered: extend it
            end = near_end
            continue
        if end >= 0 and BADNESS_RE.search(line, start, end):
            return True
        start, end = near_start, near_end
    return end >= 0 and BADNESS_RE.search(line, start, end) is not None


def _chars_once(text: str) -> str:
    """ftfy first, on the text as it came (C1 controls and escapes are its evidence), then the rest."""
    text = _fix_text(text)
    text = _INVISIBLE.sub("", _unify_line_breaks(text))
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def normalize_chars(text: str) -> str:
    """Repair mojibake, apply NFC, drop control/zero-width/bidi characters; layout untouched."""
    return _fixpoint(_chars_once, text)


def _paragraphs(text: str) -> list[str]:
    """Split into paragraphs: each non-empty line is one, except hard-wrapped continuation lines."""
    paragraphs: list[str] = []
    joinable = False
    for raw_line in text.split("\n"):
        line = " ".join(raw_line.split())  # whitespace runs folded to one space (a line holds no newline)
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


def normalize_markup(text: str) -> str:
    """What a page needs before extraction: mojibake that holds C1 controls repaired, terminal escapes,
    control and invisible characters dropped, line breaks unified.

    The HTML parser drops C1 controls, the evidence ftfy needs for UTF-8 read as Latin-1 (``â`` U+0080 U+009C
    for ``“``), so the lines that hold one go through ftfy here, exactly as ``normalize_chars`` would
    fix them. The rest of mojibake repair and NFC is left to the text extraction keeps
    (``normalize_text``), a small part of the page: on the gold sets, repairing whole pages first
    changed the extracted text of 1 page in 1,478 (same F1) and cost about as much as the extraction.
    """
    if "\x1b" in text:
        text = ftfy.fixes.remove_terminal_escapes(text)
    c1_found = False

    def drop(match: re.Match[str]) -> str:
        nonlocal c1_found
        c1_found = c1_found or match.group() in _C1_CHARS
        return ""

    cleaned = _INVISIBLE.sub(drop, text)  # one scan finds C1 controls and drops the rest (most pages have none)
    if c1_found:
        cleaned = _INVISIBLE.sub("", _C1_LINE.sub(lambda line: ftfy.fix_text(line.group(), _FTFY), text))
    return _unify_line_breaks(cleaned)


def _unify_line_breaks(text: str) -> str:
    """``_LINE_BREAKS.sub("\\n", text)``, without scanning a page that has none of them (most have none)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\u2028" in text or "\u2029" in text or "\x85" in text:
        text = _LINE_BREAKS.sub("\n", text)
    return text


def normalize_batch(docs: list[Document]) -> list[Document]:
    """Normalize a shard in place: full layout for text, characters only for HTML (layout is markup)."""
    for doc in docs:
        doc.text = normalize_text(doc.text) if doc.kind == "text" else normalize_chars(doc.text)
    return docs

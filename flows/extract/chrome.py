"""Remove web chrome lines from already-extracted plain text.

Text scraped from the web still carries the page furniture around the article: share bars,
"Advertisement", captions, bylines, counters, reading-time badges, teaser links, author bios,
"Comments". Each line is judged by its shape and its place, not by a list of known strings:

* the article *body* is the span between the first and the last prose line (a long line that
  ends like a sentence); chrome clusters in the *head* before it and the *tail* after it;
* in the head and tail only lines shaped like a title, a standfirst or prose survive;
* anywhere, lines with no words (counters, rules), captions ("... Photo: Reuters"), lines that
  repeat, and short lines made only of boilerplate words go;
* a trailing author bio (a name line followed by a paragraph that starts with that name) goes.

A small vocabulary of boilerplate words is one signal among these; it only ever removes *short*
lines, so a sentence of the article is never dropped because it mentions "comments".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_SENTENCE_END = re.compile(r"""[.!?…:;。！？：；]["'”’)\]」』】）]*$""")
# Han, kana and hangul: scripts that do not separate words with spaces.
_WIDE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_CAPTION = re.compile(
    r"(?:^|[\s.(|])(?:photo|photograph|image|picture|pic|credit|source|illustration|video|file photo)"
    r"s?\s*(?:by|credit)?\s*[:©]\s*[^\s].{0,60}$|(?:getty images|afp|reuters|ap photo|shutterstock)\)?\.?$",
    re.I,
)
_TEASER = re.compile(r"(?:read|continue reading|see|learn|find out|view)\s+(?:more|full|the full)\b.{0,30}$", re.I)
_KEY_VALUE = re.compile(r"^[\w ]{2,25}:\s*\S.{0,30}$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•·–]|\d{1,2}[.)])\s+\S")
_COPYRIGHT = re.compile(r"(?:©|\(c\)|copyright\b|all rights reserved)", re.I)

# Words that page furniture is made of on English-language sites. A short line made mostly of
# these (and numbers) is chrome wherever it sits; a sentence that uses them is not affected.
_CHROME_VOCABULARY = """
    advertisement advertising ad ads sponsored promoted share shares sharing tweet facebook twitter
    linkedin whatsapp pinterest email print comment comments reply replies login log sign signin
    subscribe subscription newsletter follow us read more next previous prev related stories story
    articles article posts post blog tags tag topics category categories home menu search skip
    content cookie cookies privacy policy terms accept close back top trending popular latest
    recommended watch listen minute minutes min time reading image images avatar photo photos video
    videos gallery click here loading view all see more news continue page of by on in and the to
    you your why can trust we our copyright rights reserved rss feed download app contact about edit
    report save saved like likes votes vote rating reviews review
"""
_CHROME_WORDS = frozenset(_CHROME_VOCABULARY.split())

# A run of this many consecutive lines of at most _STUB_WORDS words is navigation.
_STUB_RUN = 4
_STUB_WORDS = 5


@dataclass(frozen=True, slots=True)
class _Line:
    text: str
    words: int
    prose: bool
    """A long line that ends like a sentence: certainly article text."""


def _word_count(text: str) -> int:
    """Words in ``text``; scripts written without spaces count about one word per two characters."""
    wide = len(_WIDE.findall(text))
    if not wide:
        return len(_WORD.findall(text))
    return len(_WORD.findall(_WIDE.sub(" ", text))) + (wide + 1) // 2


def _line(text: str) -> _Line:
    """One line of text with its word count and whether it reads as prose."""
    words = _word_count(text)
    ends = bool(_SENTENCE_END.search(text))
    prose = (words >= 12 and ends) or words >= 25
    return _Line(text, words, prose)


def _chrome_word_share(text: str) -> float:
    """Share of the line's words that are chrome words or numbers (1.0 for a line without words)."""
    tokens: list[str] = [t.lower() for t in _WORD.findall(text)]
    if not tokens:
        return 1.0
    return sum(t in _CHROME_WORDS or t.isdigit() for t in tokens) / len(tokens)


def _is_name_shaped(text: str) -> bool:
    """Two to four capitalised tokens and nothing else: a byline or an author line."""
    tokens = text.replace("By ", "", 1).split()
    return 2 <= len(tokens) <= 4 and all(t[:1].isupper() and t.isalpha() for t in tokens)


def _always_chrome(line: _Line) -> bool:
    """Lines that are chrome wherever they appear."""
    text = line.text.strip()
    if line.words == 0:
        return True  # rules ("---"), lone bullets, emoji
    if line.words <= 2 and all(t.isdigit() for t in _WORD.findall(text)):
        return True  # counters ("18", "3 / 12")
    if line.words <= 20 and _CAPTION.search(text) and not line.text.rstrip().endswith(("?", "!")):
        return True
    if line.words <= 12 and _TEASER.search(text) and not _SENTENCE_END.search(text.rstrip(".…")):
        return True
    if line.words <= 25 and _TEASER.search(text) and text.endswith(("...", "…", "»", ">")):
        return True  # teaser blurb ending in "Read more..."
    if line.words <= 12 and _COPYRIGHT.search(text):
        return True
    return line.words <= 6 and not line.prose and _chrome_word_share(text) >= 0.75


def _title_like(line: _Line, title: str | None) -> bool:
    """Whether a line above the prose could be the headline: the known title, or shaped like one."""
    if title and _similar(line.text, title):
        return True
    shaped = 2 <= line.words <= 30 and not _KEY_VALUE.match(line.text) and not _is_name_shaped(line.text)
    return shaped and not _always_chrome(line)


def _keep_outside_body(line: _Line, nxt: _Line | None) -> bool:
    """Head/tail lines: keep sentences, list items, table rows and list lead-ins; drop short furniture."""
    text = line.text.strip()
    if line.prose or (line.words >= 4 and _SENTENCE_END.search(text)):
        return True
    if text.startswith("|") or (_LIST_ITEM.match(text) and line.words >= 3):
        return True  # table rows and list items belong to whatever they sit next to
    return text.endswith((":", " -", "–")) and nxt is not None and bool(_LIST_ITEM.match(nxt.text))


def _similar(a: str, b: str) -> bool:
    """Near-identical lines (a repeated headline with a site prefix); cheap bounds first."""
    matcher = SequenceMatcher(None, a.lower(), b.lower(), autojunk=False)
    return matcher.real_quick_ratio() >= 0.8 and matcher.quick_ratio() >= 0.8 and matcher.ratio() >= 0.8


def _head_keep(lines: list[_Line], first: int, title: str | None) -> list[bool]:
    """Keep marks for the lines before the first prose line."""
    keep = [False] * first
    title_at = next((i for i in range(first) if _title_like(lines[i], title)), None)
    if title_at is not None:
        keep[title_at] = True
    for i in range(first):
        if i == title_at:
            continue
        if title_at is not None and _similar(lines[i].text, lines[title_at].text):
            continue  # a second copy of the title ("Site : Title")
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        keep[i] = _keep_outside_body(lines[i], nxt) or (
            title_at is not None and i == title_at + 1 and lines[i].words >= 8
        )  # a standfirst right under the title
    return keep


def _bio_start(lines: list[_Line], last: int) -> int | None:
    """Index of a trailing author block: a name line followed by a paragraph opening with it."""
    for i in range(max(0, len(lines) - 6), len(lines) - 1):
        name = lines[i].text.strip()
        if _is_name_shaped(name) and lines[i + 1].text.lstrip().startswith(name) and i + 1 >= last:
            return i
    return None


def _is_content(line: str) -> bool:
    """Whether a raw line holds anything but whitespace."""
    return bool(line.strip())


_HEADLINE_MAX_WORDS = 30
_HEADLINE_MAX_CHARS = 200
_MARKDOWN_HEADING = re.compile(r"^#{1,6}\s+")


def headline(text: str) -> str | None:
    """The first paragraph of a cleaned text when it is shaped like a headline, else None.

    Headline-shaped: 2 to 30 words, at most 200 characters, no sentence-ending punctuation, and
    more text after it (a one-paragraph text has no separate title).
    """
    first, _, rest = text.partition("\n\n")
    first = _MARKDOWN_HEADING.sub("", first).strip()
    words = len(first.split())
    if not rest or not 2 <= words <= _HEADLINE_MAX_WORDS or len(first) > _HEADLINE_MAX_CHARS:
        return None
    return None if _SENTENCE_END.search(first) else first


def strip_chrome(text: str, title: str | None = None) -> str:
    """Return ``text`` without its chrome lines; paragraphs stay separated as they were.

    ``title``, when known, helps tell the headline apart from the furniture above it.
    """
    raw_lines = text.splitlines()
    content_idx = [i for i, ln in enumerate(raw_lines) if _is_content(ln)]
    lines = [_line(raw_lines[i].strip()) for i in content_idx]
    keep = _keep_marks(lines, title)
    kept = {content_idx[i] for i, k in enumerate(keep) if k}
    out: list[str] = []
    for i, ln in enumerate(raw_lines):
        if i in kept:
            out.append(ln.strip())
        elif not _is_content(ln) and out and out[-1] != "":
            out.append("")  # keep paragraph breaks, never two in a row
    return "\n".join(out).strip()


def _keep_marks(lines: list[_Line], title: str | None) -> list[bool]:
    """For each content line, whether it stays: the prose span, and what around it is not chrome."""
    prose_at = [i for i, ln in enumerate(lines) if ln.prose]
    if not prose_at:
        # No article prose to anchor on: only drop what is chrome anywhere.
        return [not _always_chrome(ln) for ln in lines]
    first, last = prose_at[0], prose_at[-1]
    keep = _head_keep(lines, first, title) + [True] * (last - first + 1)
    for i in range(last + 1, len(lines)):
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        keep.append(_keep_outside_body(lines[i], nxt))
    bio = _bio_start(lines, last)
    if bio is not None:
        keep[bio:] = [False] * (len(lines) - bio)
    _drop_repeats_and_furniture(lines, keep)
    _drop_short_runs(lines, keep, first, last)
    return keep


def _is_stub(line: _Line) -> bool:
    """A menu-item-shaped line: a few words, no sentence end, not a list item."""
    text = line.text.strip()
    return line.words <= _STUB_WORDS and not _SENTENCE_END.search(text) and not _LIST_ITEM.match(text)


def _drop_short_runs(lines: list[_Line], keep: list[bool], first: int, last: int) -> None:
    """Inside the body, a run of several stub lines is a menu or a tag cloud, not headings."""
    i = first
    while i <= last:
        j = i
        while j <= last and _is_stub(lines[j]):
            j += 1
        if j - i >= _STUB_RUN:
            keep[i:j] = [False] * (j - i)
        i = j + 1


def _drop_repeats_and_furniture(lines: list[_Line], keep: list[bool]) -> None:
    """Drop always-chrome lines and a short line that repeats the one just before it."""
    for i, ln in enumerate(lines):
        if not keep[i]:
            continue
        repeat = i > 0 and ln.text.lower() == lines[i - 1].text.lower() and not ln.prose
        if repeat or _always_chrome(ln):
            keep[i] = False

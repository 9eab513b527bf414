"""Normalization: NFC, mojibake, invisible characters, whitespace and paragraphs; idempotent."""

from __future__ import annotations

import re
import unicodedata

import ftfy
from ftfy.badness import MOJIBAKE_CATEGORIES, is_bad
from hypothesis import given
from hypothesis import strategies as st

from flows.document import Document
from flows.normalize import _FTFY, _fix_text, _looks_bad, normalize_batch, normalize_chars, normalize_text


def test_nfc_and_mojibake_are_repaired() -> None:
    assert normalize_text("Cafe\u0301 and naÃ¯ve faÃ§ade") == "Café and naïve façade"


def test_invisible_and_control_characters_are_removed() -> None:
    text = "zero\u200bwidth, bidi\u202eoverride\u202c, nul\x00 and bell\x07, soft\u00adhyphen, bom\ufeff."
    assert normalize_text(text) == "zerowidth, bidioverride, nul and bell, softhyphen, bom."


def test_typographic_quotes_and_full_width_text_are_kept() -> None:
    assert normalize_text("“Quoted” — it’s ＡＢＣ") == "“Quoted” — it’s ＡＢＣ"


def test_whitespace_is_folded_and_paragraphs_get_one_blank_line() -> None:
    text = "  First   paragraph\there.  \r\n\r\n\r\n\nSecond\u00a0one.\nThird line.\n\n"
    assert normalize_text(text) == "First paragraph here.\n\nSecond one.\n\nThird line."


def test_hard_wrapped_prose_is_joined_into_one_paragraph() -> None:
    text = "This paragraph was wrapped by an email client at a fixed\nwidth and continues on this line.\nNew paragraph."
    assert normalize_text(text) == (
        "This paragraph was wrapped by an email client at a fixed width and continues on this line.\n\nNew paragraph."
    )


def test_html_keeps_its_layout_but_gets_clean_characters() -> None:
    docs = [Document("1", "a.html", "<p>Caf\u00c3\u00a9\u200b</p>\n\n\n<p>x</p>", "html"),
            Document("2", "b.txt", "a\n\n\n\nb", "text")]
    normalize_batch(docs)
    assert docs[0].text == "<p>Café</p>\n\n\n<p>x</p>"
    assert docs[1].text == "a\n\nb"


@given(st.text())
def test_normalization_is_idempotent_and_clean(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert unicodedata.is_normalized("NFC", once)
    assert "\n\n\n" not in once and once == once.strip()
    assert not any(ord(ch) < 32 and ch != "\n" for ch in once)


@given(st.text())
def test_character_normalization_is_idempotent(text: str) -> None:
    once = normalize_chars(text)
    assert normalize_chars(once) == once


# The characters ftfy's mojibake test looks at (its categories are regex classes, ranges included), and the
# Cyrillic and Greek letters its patterns name, with ASCII letters, spaces and punctuation around them.
_IN_A_CATEGORY = re.compile("[" + "".join(MOJIBAKE_CATEGORIES.values()) + "]")
_MOJIBAKE_CHARS = {chr(code) for code in range(0x80, 0x2600) if _IN_A_CATEGORY.match(chr(code))}
_MOJIBAKE_PRONE = st.text(st.sampled_from(sorted(_MOJIBAKE_CHARS | set("\uf8ffвЂГўВРСβΆΞΟāaZz .,?!\n"))), max_size=40)


@given(_MOJIBAKE_PRONE)
def test_mojibake_is_detected_exactly_as_ftfy_does(text: str) -> None:
    # The speed-ups (only lines ftfy would change go through it; only the stretches near non-ASCII
    # characters are tested for mojibake) must not change what ftfy would do.
    assert _looks_bad(text) == is_bad(text)
    assert _fix_text(text) == ftfy.fix_text(text, _FTFY)


# -- ftfy first: the characters mojibake repair needs are all there when it runs -------------------------------

_REMOVED_AFTER_FTFY = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)


def _reference_chars(text: str) -> str:
    """The definition ``normalize_chars`` must meet: ftfy.fix_text on the text as it came, then line breaks
    unified, invisible characters dropped and NFC, repeated until stable (no fast path)."""
    for _ in range(4):
        fixed = ftfy.fix_text(text, _FTFY)
        fixed = re.sub("\r\n?|[\u2028\u2029\x85]", "\n", fixed)
        fixed = unicodedata.normalize("NFC", _REMOVED_AFTER_FTFY.sub("", fixed))
        if fixed == text:
            break
        text = fixed
    return text


def _cesu8(text: str) -> bytes:
    """UTF-8 as Java and MySQL's utf8 write it: characters outside the BMP as two encoded surrogates."""
    def surrogates(ch: str) -> str:
        code = ord(ch) - 0x10000
        return ch if code < 0 else chr(0xD800 + (code >> 10)) + chr(0xDC00 + (code & 0x3FF))

    return "".join(map(surrogates, text)).encode("utf-8", "surrogatepass")


# Text a page holds: ASCII words, Latin letters with marks, typographic punctuation, Cyrillic, Greek, emoji.
_SOURCE_CHARS = st.sampled_from(list("abcdeXYZ .,!?'\"-") + list("éèàçüöñßÉœ") + list("“”‘’–—…€©«»")
                                + list("привет") + list("αβγ") + ["😀", "👍", "🎉"])
_SOURCE_TEXT = st.lists(st.one_of(_SOURCE_CHARS, st.sampled_from(["word ", "the café ", "naïve "])),
                        min_size=1, max_size=30).map("".join)
# How UTF-8 bytes get misread: as Latin-1 (C1 controls appear), Windows-1252, Windows-1251, MacRoman.
_MISREADS = ["latin-1", "cp1252", "cp1251", "mac_roman"]


@st.composite
def _mojibake(draw: st.DrawFn) -> str:
    text = draw(_SOURCE_TEXT)
    for _ in range(draw(st.integers(1, 2))):  # once, or doubled (decoded wrongly, then again)
        encoded = _cesu8(text) if draw(st.booleans()) else text.encode("utf-8", "surrogatepass")
        text = encoded.decode(draw(st.sampled_from(_MISREADS)), errors="replace")
    around = draw(st.sampled_from(["", "\r\n", "\n\n", "\x1b[31m", "\x00", "\u200b", " plain words "]))
    return draw(st.sampled_from([text, around + text, text + around + draw(_SOURCE_TEXT)]))


@given(st.one_of(_mojibake(), _SOURCE_TEXT, _MOJIBAKE_PRONE))
def test_character_normalization_is_ftfy_on_the_raw_text_exactly(text: str) -> None:
    # The fast paths (lines ftfy leaves alone skipped, control characters removed after it) must give
    # what ftfy on the whole raw text, then the removals, give.
    assert normalize_chars(text) == _reference_chars(text)


@given(_SOURCE_TEXT)
def test_utf8_read_as_latin1_is_repaired_once_or_twice(text: str) -> None:
    once = text.encode().decode("latin-1")
    twice = once.encode().decode("latin-1")
    expected = normalize_text(text)
    assert normalize_text(once) == expected
    assert normalize_text(twice) == expected


def test_double_encoded_quotes_keep_their_words() -> None:
    original = "“Double encoded” café"
    twice = original.encode().decode("latin-1").encode().decode("latin-1")
    assert normalize_text(twice) == original
    assert normalize_text(original.encode().decode("latin-1")) == original


def test_terminal_escapes_leave_no_remnants() -> None:
    assert normalize_text("red \x1b[31mwarning\x1b[0m and \x1b[1;32mbold green\x1b[0m here") == (
        "red warning and bold green here")


def test_html_keeps_c1_mojibake_evidence_until_it_is_repaired() -> None:
    from flows.normalize import normalize_markup

    page = "<p>" + "“Quoted” café".encode().decode("latin-1") + "</p>\n<p>plain\x00 \x1b[31mline</p>"
    assert normalize_markup(page) == "<p>“Quoted” café</p>\n<p>plain line</p>"

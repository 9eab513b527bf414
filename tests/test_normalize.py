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

"""Decoding bytes into text by evidence: declared and sniffed encodings, BOMs, binary told from text with stray NULs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flows.normalize import normalize_text
from flows.read import DecodeError, decode_bytes
from tests.read.helpers import read_all


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("café déjà vu — “quoted”".encode("cp1252"), "café déjà vu — “quoted”"),
        ("<meta charset='shift_jis'><p>日本語の記事です。</p>".encode("cp932"), "日本語の記事です。"),
        ("<meta http-equiv='Content-Type' content='text/html; charset=gb2312'>中文新闻报道".encode("gb18030"),
         "中文新闻报道"),
        ("\ufeffutf-16 text with BOM ünïcode".encode("utf-16"), "utf-16 text with BOM ünïcode"),
        ("naïve UTF-8 ".encode() + "and café".encode("cp1252"), "naïve UTF-8 and café"),
        ("<meta charset='shift_jis'>misdeclared ünïcode".encode(), "misdeclared ünïcode"),
    ],
    ids=["cp1252", "shift_jis-meta", "gb2312-meta", "utf16-bom", "mixed-utf8-cp1252", "utf8-declared-sjis"],
)
def test_encodings_are_decoded(tmp_path: Path, payload: bytes, expected: str) -> None:
    (tmp_path / "page.html").write_bytes(payload)
    docs, rejects = read_all(tmp_path)
    assert rejects == []
    assert expected in docs[0].text


_WORDS = st.lists(st.sampled_from(["the", "council", "met", "café", "on", "Tuesday", "naïve", "budget", "“quoted”"]),
                  min_size=40, max_size=200).map(" ".join)


@given(_WORDS, st.integers(1, 4), st.sampled_from(["utf-8", "cp1252"]), st.randoms(use_true_random=False))
def test_a_few_stray_nuls_do_not_make_text_binary(text: str, nuls: int, encoding: str, rng: random.Random) -> None:
    payload = bytearray(text.encode(encoding))
    spaces = [at for at, byte in enumerate(payload) if byte == 0x20]
    for at in sorted(rng.sample(spaces, nuls), reverse=True):  # stray NULs between words
        payload.insert(at, 0)
    decoded = decode_bytes(bytes(payload), is_html=False)
    assert normalize_text(decoded) == normalize_text(text)


@given(st.binary(min_size=256, max_size=4096))
def test_random_bytes_are_binary(payload: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        decode_bytes(payload, is_html=False)
    assert err.value.reason == "binary"


@given(st.text(max_size=500), st.sampled_from(["utf-8", "utf-16"]))
def test_unicode_text_decodes_back_exactly_or_is_refused_with_a_reason(text: str, encoding: str) -> None:
    """UTF-8, and UTF-16 with its BOM, come back exactly (a leading BOM aside), or are refused as binary/empty.

    Bytes that are a large share NUL are also UTF-16 without a BOM (b"1\\x00" is "1"): ambiguous, left out.
    """
    assume(text.count("\x00") * 10 <= len(text.encode(encoding)))
    try:
        decoded = decode_bytes(text.encode(encoding), is_html=False)
    except DecodeError as err:
        assert err.reason in {"empty", "binary"}
        return
    assert decoded.lstrip("\ufeff") == text.lstrip("\ufeff")

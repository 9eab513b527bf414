"""Bytes to text: BOM, then the declared charset (HTTP header or HTML meta), then detection.

Order of evidence, strongest first: a byte-order mark; bytes that are valid UTF-8 (pages that
declare a legacy charset but are UTF-8 are common); the charset the server or page declares;
UTF-8 with a few stray Windows-1252 bytes (mixed files are common in crawls); charset-normalizer's
detection. Bytes are refused as binary by evidence: when a large share of them cannot be text
(control characters that no text uses, undecodable bytes), not because of one NUL.
"""

from __future__ import annotations

import codecs
import contextlib
import re

from charset_normalizer import from_bytes

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{2,40})""", re.IGNORECASE)
# WHATWG: browsers read these labels as their supersets; so do we.
_SUPERSETS = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252",
              "us-ascii": "cp1252", "gb2312": "gb18030", "gbk": "gb18030", "shift_jis": "cp932",
              "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "euc-kr": "cp949", "iso-8859-9": "cp1254"}
_SNIFF_BYTES = 4096
# Share of characters that may be C0 controls no text uses (all but \t \n \r \f and the ESC of terminal
# escapes) or U+FFFD before the unit is binary. Random bytes hold about 11% C0 controls in any
# single-byte reading and most of them undecodable in UTF-8; text with a few stray NULs, well under 1%.
_MAX_NON_TEXT_SHARE = 0.05
# Undecodable characters a declared charset may leave before detection is tried instead.
_MAX_REPLACED_SHARE = 0.01
# Share of NUL bytes up to which valid UTF-8 is read as UTF-8 (UTF-16 of ASCII-range text has half).
_MAX_NUL_SHARE = 0.3
# Share of NUL bytes up to which they are stray bytes in single-byte or multi-byte text, not UTF-16/32.
_MAX_STRAY_NUL_SHARE = 0.05
# Mixed UTF-8/cp1252: at most this share of the non-ASCII characters may be stray bytes.
_MAX_STRAY_SHARE = 0.5
# Western text in cp1252: mostly ASCII letters, and its non-ASCII ones are common Latin letters and marks.
_WESTERN = frozenset("àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿœšžßÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝŸŒŠŽ"
                     "“”‘’–—…€«»°§©®·•\u00a0¡¿£¥¢ºª×")
_MAX_WESTERN_SHARE = 0.3


class DecodeError(ValueError):
    """The bytes are not text: ``reason`` is the reject code, ``detail`` a sentence."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _cp1252_fallback(err: UnicodeError) -> tuple[str, int]:
    assert isinstance(err, UnicodeDecodeError)
    bad = err.object[err.start : err.end]
    return bad.decode("cp1252", errors="replace"), err.end


codecs.register_error("siftlake-cp1252", _cp1252_fallback)


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    label = _SUPERSETS.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _bom(payload: bytes) -> str | None:
    for bom, codec in _BOMS:
        if payload.startswith(bom):
            return codec
    return None


def _meta_charset(payload: bytes) -> str | None:
    match = _META_CHARSET.search(payload[:_SNIFF_BYTES])
    return match.group(1).decode("ascii") if match else None


def _mostly_utf8(payload: bytes) -> str | None:
    """Decode UTF-8 that has a few invalid bytes, reading those as Windows-1252."""
    text = payload.decode("utf-8", errors="replace")
    stray = text.count("\ufffd")
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    if stray and non_ascii and stray / non_ascii <= _MAX_STRAY_SHARE and stray < non_ascii:
        return payload.decode("utf-8", errors="siftlake-cp1252")
    return None


def _western(payload: bytes) -> str | None:
    """Decode as Windows-1252 when the result reads as Western European text.

    charset-normalizer often mistakes short cp1252 text for mac_latin2 or cp1250; a cp1252 reading
    whose non-ASCII characters are few and all common Latin letters and punctuation is the safer bet.
    """
    try:
        text = payload.decode("cp1252")
    except UnicodeDecodeError:
        return None
    letters = sum(1 for ch in text if ch.isalpha())
    non_ascii = [ch for ch in text if ord(ch) > 127]
    accented = sum(1 for ch in non_ascii if ch.isalpha())
    if not letters or accented > letters * _MAX_WESTERN_SHARE or not set(non_ascii) <= _WESTERN:
        return None
    return text


def _detect(payload: bytes) -> str | None:
    best = from_bytes(payload[: 1 << 18]).best()
    if best is None:
        return None
    return payload.decode(best.encoding, errors="replace")


_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\ufffd]")


def _looks_binary(text: str) -> bool:
    """Whether the characters that cannot be text are a large share of the first 64 KiB."""
    sample = text[: 1 << 16]
    return bool(sample) and len(_NOT_TEXT.findall(sample)) > len(sample) * _MAX_NON_TEXT_SHARE


def decode_bytes(payload: bytes, *, is_html: bool, declared: str | None = None) -> str:
    """Decode a unit's bytes; raise ``DecodeError`` when they are binary or undecodable."""
    if not payload.strip():
        raise DecodeError("empty", "the unit is empty or whitespace only")
    text = _decode(payload, is_html, declared)
    if text is None or _looks_binary(text):
        raise DecodeError("binary", "the bytes do not decode to text in any known encoding (binary file?)")
    if not text.strip():  # a byte-order mark alone, or whitespace in UTF-16
        raise DecodeError("empty", "the unit is empty or whitespace only once decoded")
    return text


def _decode(payload: bytes, is_html: bool, declared: str | None) -> str | None:
    bom = _bom(payload)
    if bom:
        return payload.decode(bom, errors="replace")
    sniff = payload[:_SNIFF_BYTES]
    if b"\x00" in sniff:
        # A few NULs in valid UTF-8 are stray bytes in text (normalization drops them); UTF-16/32 without
        # a mark has many (a quarter or more of ASCII-range text). Text in another encoding with a few
        # stray NULs is decoded without them; otherwise detection decides (binary is refused later).
        nuls = sniff.count(b"\x00")
        if nuls <= len(sniff) * _MAX_NUL_SHARE:
            with contextlib.suppress(UnicodeDecodeError):
                return payload.decode("utf-8")
        if nuls <= len(sniff) * _MAX_STRAY_NUL_SHARE:
            return _decode_declared(payload.replace(b"\x00", b""), is_html, declared)
        return _detect(payload)
    return _decode_declared(payload, is_html, declared)


def _decode_declared(payload: bytes, is_html: bool, declared: str | None) -> str | None:
    try:
        # Valid UTF-8 beats a declaration: legacy bytes are almost never valid UTF-8 by chance,
        # while pages that declare Shift_JIS or latin-1 but are UTF-8 are common.
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        pass
    codec = _codec(declared) or (_codec(_meta_charset(payload)) if is_html else None)
    if codec and codec != "utf-8":
        text = payload.decode(codec, errors="replace")
        if text.count("\ufffd") <= len(text) * _MAX_REPLACED_SHARE:
            return text
    return _mostly_utf8(payload) or _western(payload) or _detect(payload)

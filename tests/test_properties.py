"""Property tests (issue 8): readers, decoder, normalizer and extractor never raise on arbitrary input.

Bounded example counts keep this a short fuzz run in CI; raise them locally with
``--hypothesis-profile`` or ``HYPOTHESIS_MAX_EXAMPLES`` when hunting.
"""

from __future__ import annotations

import gzip
import tempfile
import unicodedata
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from flows.document import Document
from flows.extract import ExtractConfig, extract_batch
from flows.normalize import normalize_chars, normalize_text
from flows.read import DecodeError, ReadConfig, decode_bytes, discover, read_shard

SUFFIXES = [".txt", ".md", ".html", ".htm", ".jsonl", ".warc", ".txt.gz", ".jsonl.gz", ".warc.gz", ".bin"]
SMALL = ReadConfig(max_unit_bytes=4096, max_inflated_bytes=8192)

# Bytes a crawl produces: fragments of markup, JSON, WARC headers, BOMs, gzip magic, encodings.
FRAGMENTS = [b"<html>", b"<p>", b"</div>", b"<meta charset='shift_jis'>", b"<!--", b"<script>", b"{\"text\": \"",
             b"\"}", b"\n", b"\r\n", b"WARC/1.0\r\n", b"WARC-Type: response\r\n", b"Content-Length: 10\r\n\r\n",
             b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x1f\x8b\x08\x00", b"\x00", b"\xc3\xa9", b"\xe9",
             "日本語".encode("cp932"), "中文".encode("gb18030"), b"\xe2\x80\xae", b"&amp;", b"&#0;"]
crawl_bytes = st.one_of(
    st.binary(max_size=2048),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=16)), max_size=60).map(b"".join),
)


@given(crawl_bytes, st.booleans(), st.sampled_from([None, "utf-8", "shift_jis", "gb2312", "latin-1", "bogus", ""]))
def test_decode_bytes_returns_text_or_raises_only_decode_error(payload: bytes, is_html: bool,
                                                               declared: str | None) -> None:
    try:
        text = decode_bytes(payload, is_html=is_html, declared=declared)
    except DecodeError as err:
        assert err.reason in {"empty", "binary"} and err.detail
    else:
        assert isinstance(text, str) and text.strip()


@settings(max_examples=60, deadline=None)
@given(crawl_bytes, st.sampled_from(SUFFIXES), st.booleans())
def test_read_shard_never_raises_and_accounts_for_the_file(payload: bytes, suffix: str, compress: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if compress and suffix.endswith(".gz"):
            payload = gzip.compress(payload, mtime=0)
        (Path(folder) / f"unit{suffix}").write_bytes(payload)
        found = discover(folder)
        docs, rejects = read_shard(found.files, SMALL)
    for unit in [*docs, *rejects]:
        assert unit.source_uri.startswith(f"unit{suffix}")
    for reject in rejects:
        assert reject.reason and reject.detail and reject.stage == "read"
    for doc in docs:
        assert doc.text.strip() and doc.kind in {"text", "html"}
    if not suffix.endswith((".jsonl", ".jsonl.gz", ".warc", ".warc.gz")):
        assert len(docs) + len(rejects) == 1, "a plain file is exactly one unit"


@given(st.text())
def test_normalize_text_is_idempotent_on_arbitrary_text(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert unicodedata.is_normalized("NFC", once)


HOSTILE_PIECES = ["Caf\u00c3\u00a9 ", "\u202e", "\u200b", "\r\n", "\n\n\n", "  ", "e\u0301", "\x00", "Ã", "©",
                  "word ", ". ", "\ufeff", "\u2028", "ﬁ", "ｆｕｌｌ"]


@given(st.lists(st.sampled_from(HOSTILE_PIECES), max_size=40).map("".join))
def test_normalization_is_idempotent_on_hostile_fragments(text: str) -> None:
    assert normalize_text(normalize_text(text)) == normalize_text(text)
    assert normalize_chars(normalize_chars(text)) == normalize_chars(text)


TAGS = ["html", "body", "div", "p", "span", "table", "tr", "td", "script", "style", "a", "article", "main", "nav",
        "ul", "li", "h1", "pre", "iframe", "svg", "math", "template", "noscript", "title", "head", "br", "img"]
html_fragments = st.one_of(
    st.builds(lambda t: f"<{t}>", st.sampled_from(TAGS)),
    st.builds(lambda t: f"</{t}>", st.sampled_from(TAGS)),
    st.sampled_from(["<!--", "-->", "<![CDATA[", "]]>", "&nbsp;", "&#x0;", "&", "<", ">", "'", '"', "<p class='x",
                     "<a href='javascript:1'>", "<meta charset='bogus'>", "<?xml version='1.0'?>", "<!DOCTYPE html>"]),
    st.text(max_size=40),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(html_fragments, max_size=80).map("".join))
def test_extract_returns_text_or_a_reject_for_arbitrary_html(html: str) -> None:
    doc = Document("id", "page.html", html, "html")
    kept, rejects = extract_batch([doc], ExtractConfig(timeout_s=10))
    assert len(kept) + len(rejects) == 1
    if kept:
        assert kept[0].text.strip() and kept[0].text == normalize_text(kept[0].text)
    else:
        assert rejects[0].stage == "extract"
        assert rejects[0].reason in {"no_main_content", "extract_timeout", "extract_error"}

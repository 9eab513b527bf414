"""A corpus of hostile inputs, built in a temporary folder by the tests (never committed as files).

``build(root)`` writes ``root/source`` (what is ingested) and ``root/outside`` (what symlinks point at
and nothing may read), and returns a ``Corpus`` that says, for every input unit, what it must become:
a document (with text that must appear in it, exactly) or a reject (with its stage and reason code).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

# Limits the hostile run is configured with (ReadConfig / ExtractConfig fields).
MAX_UNIT_BYTES = 12 * 1024 * 1024
MAX_INFLATED_BYTES = 32 * 1024 * 1024
# html/slow_tables.html runs into it in each hostile run (the child works at full speed till then); the slowest
# other page took 0.55 s to extract here (the child's first page), so 4 s leaves a margin for a loaded machine.
EXTRACT_TIMEOUT_S = 4.0
BOMB_INFLATED_BYTES = 2 * 1024**3
SECRET = "TOP-SECRET-OUTSIDE-SOURCE"

PROSE = [
    "The committee met on Tuesday to review the budget for the coming year and agreed on most items.",
    "Several members asked for more detail on the maintenance costs of the old library building.",
    "A decision on the new cycling lanes was postponed until the traffic survey is published in spring.",
]


@dataclass(frozen=True)
class Expect:
    """What one unit must become: ``document`` with ``texts`` in its text, or a reject ``stage/reason``."""

    kind: str
    what: str
    texts: tuple[str, ...] = ()
    stage: str = ""
    reason: str = ""
    exact: str | None = None
    """The whole text the document must have, when the input is plain prose (PROSE + one line)."""


def doc(what: str, *texts: str) -> Expect:
    return Expect("document", what, texts)


def prose_doc(what: str, extra: str) -> Expect:
    """A plain-text unit made by ``_prose_text(extra)``: its document text is known exactly."""
    return Expect("document", what, (extra,), exact="\n\n".join([*PROSE, extra]))


def rej(what: str, stage: str, reason: str) -> Expect:
    return Expect("reject", what, stage=stage, reason=reason)


@dataclass
class Corpus:
    source: Path
    outside: Path
    units: dict[str, Expect] = field(default_factory=dict)

    def add(self, rel: str, data: bytes, expect: Expect | None) -> Path:
        path = self.source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if expect is not None:
            self.units[rel] = expect
        return path

    def config(self) -> dict[str, object]:
        """IngestConfig fields for the hostile run (limits small enough to be hit quickly)."""
        return {"read": {"max_unit_bytes": MAX_UNIT_BYTES, "max_inflated_bytes": MAX_INFLATED_BYTES},
                "extract": {"timeout_s": EXTRACT_TIMEOUT_S}}


def _html(body: str, head: str = "", title: str = "Town news") -> str:
    return f"<html><head>{head}<title>{title}</title></head><body><article>{body}</article></body></html>"


def _paragraphs(extra: str) -> str:
    return "".join(f"<p>{p}</p>" for p in [*PROSE, extra])


def _prose_text(extra: str) -> str:
    return "\n\n".join([*PROSE, extra]) + "\n"


# -- encodings -----------------------------------------------------------------------------------

CP1252 = "Café society: déjà vu at the “Brasserie Noël” — naïve œuvres for 5 € each."
LATIN1 = "Señora Müller würde gern über Grönland, Ísland und Færøerne schreiben."
SJIS = "東京の図書館は月曜日に休館します。新しい本の貸し出しは火曜日から始まります。"
GB = "北京的图书馆星期一闭馆。新书的借阅从星期二开始。"
UTF16 = "UTF-16 with a byte-order mark: Grüße aus Köln, 你好, Привет."
MIXED_UTF8, MIXED_CP = "Crème brûlée in UTF-8, ", "then a café in cp1252."
DOUBLE = "Double-encoded: the café in Zürich serves crème brûlée."
C1_QUOTES = "“Double encoded” quotes in the café’s menu — déjà vu."
UNDECLARED = [
    ("shift_jis", "東京の図書館は月曜日に休館します。新しい本の貸し出しは火曜日から始まります。", "shift_jis"),
    ("gb2312", "北京的图书馆星期一闭馆。新书的借阅从星期二开始。从车站步行五分钟。", "gb2312"),
    ("euc_kr", "서울 도서관은 월요일에 휴관합니다. 새 책 대출은 화요일부터 시작됩니다.", "euc-kr"),
    ("cp1251", "Библиотека закрыта по понедельникам. Выдача новых книг начинается со вторника.", "cp1251"),
    ("koi8_r", "Библиотека закрыта по понедельникам. Выдача новых книг начинается со вторника.", "koi8-r"),
]


def _encodings(c: Corpus) -> None:
    c.add("enc/cp1252.txt", _prose_text(CP1252).encode("cp1252"), prose_doc("cp1252 text, undeclared", CP1252))
    head = "<meta http-equiv='Content-Type' content='text/html; charset=iso-8859-1'>"
    c.add("enc/latin1.html", _html(_paragraphs(LATIN1), head).encode("latin-1"), doc("latin-1 HTML, meta", LATIN1))
    sjis_body = "".join(f"<p>{s}。</p>" for s in SJIS.split("。") if s) + _paragraphs("")
    c.add("enc/shift_jis.html", _html(sjis_body, "<meta charset='shift_jis'>").encode("cp932"),
          doc("Shift_JIS HTML, meta", *(s + "。" for s in SJIS.split("。") if s)))
    gb_body = "".join(f"<p>{s}。</p>" for s in GB.split("。") if s) + _paragraphs("")
    head = "<meta http-equiv='Content-Type' content='text/html; charset=gb2312'>"
    c.add("enc/gb2312.html", _html(gb_body, head).encode("gb18030"),
          doc("GB2312 HTML, meta", *(s + "。" for s in GB.split("。") if s)))
    c.add("enc/utf16_bom.txt", _prose_text(UTF16).encode("utf-16"), prose_doc("UTF-16 with BOM", UTF16))
    mixed = ("\n\n".join(PROSE) + "\n\n" + MIXED_UTF8).encode() + MIXED_CP.encode("cp1252") + b"\n"
    c.add("enc/mixed utf8+cp1252.txt", mixed, prose_doc("UTF-8 with stray cp1252", MIXED_UTF8 + MIXED_CP))
    for name, text, encoding in UNDECLARED:
        paragraphs = "\n\n".join([text] * 3)
        c.add(f"enc/undeclared_{name}.txt", paragraphs.encode(encoding), doc(f"{encoding} text, undeclared", text))
    c.add("enc/double_encoded.txt", _prose_text(DOUBLE).encode().decode("latin-1").encode(),
          prose_doc("double-encoded UTF-8 (mojibake)", DOUBLE))
    # UTF-8 read as Latin-1 (C1 controls stand for the bytes of curly quotes), saved, and again.
    c1 = _prose_text(C1_QUOTES).encode().decode("latin-1").encode()
    c.add("enc/c1_mojibake.txt", c1, prose_doc("UTF-8 read as Latin-1, C1 controls", C1_QUOTES))
    c.add("enc/c1_mojibake_twice.txt", c1.decode("latin-1").encode(),
          prose_doc("UTF-8 read as Latin-1 twice", C1_QUOTES))
    page = _html(_paragraphs(C1_QUOTES)).encode().decode("latin-1").encode()
    c.add("enc/c1_mojibake.html", page, doc("HTML, UTF-8 read as Latin-1", C1_QUOTES))


# -- characters ----------------------------------------------------------------------------------

CONTROLS_OUT = "Bell and backspace and NUL were removed from this sentence."
NUL_OUT = "Four stray NUL bytes do not make this article a binary file."
ESCAPES_OUT = "The red word and a underlined one came from a terminal log."
BIDI_OUT = "Invoice for user admin gpj.exe and a zerowidth joiner were cleaned."


def _characters(c: Corpus) -> None:
    controls = "Bell\x07 and back\x08space and NUL\x00 were removed from this sentence."
    c.add("chars/controls.txt", _prose_text(controls).encode(), prose_doc("NUL and C0 controls", CONTROLS_OUT))
    bidi = "Invoice for user\u200b admin \u202egpj.exe\u202c and a zero\u200dwidth\ufeff joiner were cleaned."
    c.add("chars/bidi zero-width.txt", _prose_text(bidi).encode(), prose_doc("RTL override, zero-width", BIDI_OUT))
    name = "chars/ünïcödé 名前 ✓.md"
    c.add(name, _prose_text("A file name with spaces and non-ASCII letters.").encode(),
          prose_doc("non-ASCII file name", "A file name with spaces and non-ASCII letters."))
    raw_name = os.fsencode(c.source / "chars") + b"/caf\xe9 latin-1 name.txt"  # not UTF-8: stored as \\xe9
    with open(raw_name, "wb") as out:
        out.write(_prose_text("A file name in latin-1 bytes.").encode())
    c.units["chars/caf\\xe9 latin-1 name.txt"] = prose_doc("non-UTF-8 file name", "A file name in latin-1 bytes.")
    # A 1,100-character article with four stray NULs is text, not binary; the NULs are dropped.
    nul_article = bytearray((" ".join(PROSE * 4) + " " + NUL_OUT).encode())
    for at in (150, 420, 690, 960):
        nul_article[at:at] = b"\x00"
    c.add("chars/four_nuls.txt", bytes(nul_article), doc("1,100 characters with four NULs", NUL_OUT, PROSE[2][:40]))
    note = (PROSE[0] + " " + NUL_OUT + " " + PROSE[1]).encode().replace(b" ", b" \x00", 4)
    c.add("chars/four_nuls_short.txt", note, doc("a 280-byte note with four NULs", NUL_OUT))
    escapes = "The \x1b[1;31mred\x1b[0m word and a \x1b[4munderlined\x1b[24m one came from a terminal log."
    c.add("chars/terminal_escapes.txt", _prose_text(escapes).encode(), prose_doc("terminal escapes", ESCAPES_OUT))
    c.add("chars/with  spaces .txt", _prose_text("Spaces in the name.").encode(),
          prose_doc("spaces in name", "Spaces in the name."))


# -- binary, empty, huge -------------------------------------------------------------------------


def _binary_and_size(c: Corpus) -> None:
    rng = random.Random(8)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rng.randbytes(6000)
    c.add("bin/image.html", png, rej("PNG bytes named .html", "read", "binary"))
    elf = b"\x7fELF\x02\x01\x01\x00" + rng.randbytes(6000)
    c.add("bin/program.txt", elf, rej("ELF bytes named .txt", "read", "binary"))
    c.add("bin/zip.jsonl", b"PK\x03\x04" + rng.randbytes(3000), None)  # lines of random bytes: see _binary_jsonl
    c.add("bin/archive.zip", b"PK\x03\x04" + rng.randbytes(100), rej("unsupported suffix", "read", "unsupported_type"))
    c.add("empty/empty.txt", b"", rej("empty file", "read", "empty"))
    c.add("empty/blank.html", b" \n\t\r\n  \n", rej("whitespace-only file", "read", "empty"))
    line = ((" ".join(PROSE) + " ").encode() * (13 * 1024 * 1024 // 290))[: 13 * 1024 * 1024]
    c.add("huge/one_line_10mb.txt", line[: 10 * 1024 * 1024], doc("10 MB single line of prose", PROSE[0], PROSE[2]))
    # libxml2 refuses a text node over 10,000,000 bytes (no huge_tree): the page yields nothing, and says why.
    c.add("huge/one_line_10mb.html", b"<html><body><p>" + line[: 10 * 1024 * 1024] + b"</p></body></html>",
          rej("10 MB single-line HTML paragraph", "extract", "html_text_too_large"))
    c.add("huge/one_line_13mb.md", line, rej("13 MB single line, over max_unit_bytes", "read", "unit_too_large"))


def _binary_jsonl(c: Corpus) -> None:
    """Random bytes named .jsonl: every line of it is a unit, each an invalid-JSON reject (or an empty line)."""
    data = (c.source / "bin/zip.jsonl").read_bytes()
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.rstrip(b"\r").strip():
            c.units[f"bin/zip.jsonl#L{number}"] = rej("random bytes named .jsonl, one line", "read",
                                                    "jsonl_invalid_json")


# -- HTML ----------------------------------------------------------------------------------------

UNCLOSED = "Unclosed tags did not stop this paragraph from being found by the extractor."
DEEP_TEXT = "This sentence sits beneath one hundred thousand nested division elements."


def _html_pages(c: Corpus) -> None:
    deep = "<html><body>" + "<div>" * 100_000 + f"<p>{DEEP_TEXT}</p>" + "</div>" * 100_000 + "</body></html>"
    # libxml2 stops building the tree at depth 256, so the paragraph is lost: a reject that says so.
    c.add("html/deep_100k.html", deep.encode(), rej("HTML nested 100,000 deep", "extract", "html_too_deep"))
    scripts = ("<html><head><script>var a = 1;</script></head><body>" + "<script>track(1);</script>" * 200
               + "</body></html>")
    c.add("html/script_only.html", scripts.encode(), rej("script-only page", "extract", "no_main_content"))
    links = "".join(f"<a href='https://spam{i}.example/'>cheap pills {i}</a> " for i in range(3000))
    # trafilatura keeps the anchor texts: a document, which the quality score must rank low (LOW_QUALITY).
    c.add("html/link_farm.html", f"<html><body><div>{links}</div></body></html>".encode(),
          doc("link farm (low quality)", "cheap pills 0\n\ncheap pills 1\n\n"))
    # trafilatura works on 60,000 sibling tables for minutes: the per-page limit (timeout_s) stops it.
    tables = "<html><body>" + "<table><tr><td><p>cell text here</p></td></tr></table>" * 60_000 + "</body></html>"
    c.add("html/slow_tables.html", tables.encode(), rej("page that keeps the extractor busy for minutes", "extract",
                                                        "extract_timeout"))
    # An XML entity bomb in the DOCTYPE: lxml does not expand it (no memory blow-up), and the page yields
    # nothing; its real paragraph is lost, a known limit of the extract stage (reported in issue 8).
    entities = '<!ENTITY l0 "lol">' + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    laughs = (f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]><html><body><article>'
              f"<p>{PROSE[0]}</p><p>&l9;</p></article></body></html>")
    c.add("html/entity_bomb.html", laughs.encode(),
          rej("XML entity bomb (billion laughs)", "extract", "no_main_content"))
    body = "<div><p>" + PROSE[0] + "<p>" + PROSE[1] + "<b><i><p>" + PROSE[2] + "<p>" + UNCLOSED + "<div><span>"
    c.add("html/unclosed.html", f"<html><head><title>Unclosed</title><body><article>{body}".encode(),
          doc("unclosed tags", UNCLOSED, PROSE[2]))


# -- gzip ----------------------------------------------------------------------------------------

GZ_TEXT = "This compressed page arrived intact and was inflated correctly."


def write_gzip_bomb(path: Path, inflated: int = BOMB_INFLATED_BYTES, chunk: int = 64 * 1024 * 1024) -> None:
    """A small gzip file that inflates to ``inflated`` zero bytes, built without holding them.

    One gzip member of ``chunk`` zeros is compressed from 1 MiB pieces, then written repeatedly:
    concatenated members are one valid gzip stream (RFC 1952), so the file inflates to the total.
    """
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as member:
        zeros = bytes(1024 * 1024)
        for _ in range(chunk // len(zeros)):
            member.write(zeros)
    with open(path, "wb") as out:
        for _ in range(inflated // chunk):
            out.write(buffer.getvalue())


def _gzip(c: Corpus) -> None:
    c.add("gz/good.txt.gz", gzip.compress(_prose_text(GZ_TEXT).encode(), mtime=0), prose_doc("valid gzip", GZ_TEXT))
    whole = gzip.compress(_prose_text(GZ_TEXT).encode() * 40, mtime=0)
    c.add("gz/truncated.txt.gz", whole[: len(whole) // 2], rej("truncated gzip", "read", "gzip_truncated"))
    c.add("gz/invalid.html.gz", b"\x1f\x8b\x08\x00garbage that is not deflate" * 3,
          rej("invalid gzip", "read", "gzip_invalid"))
    c.add("gz/not_gzip_at_all.md.gz", b"plain text with a .gz suffix", rej("not gzip", "read", "gzip_invalid"))
    (c.source / "gz").mkdir(parents=True, exist_ok=True)
    write_gzip_bomb(c.source / "gz/bomb.txt.gz")
    c.units["gz/bomb.txt.gz"] = rej("gzip bomb (2 GiB of zeros), .txt: the unit limit hits first", "read",
                                    "unit_too_large")
    write_gzip_bomb(c.source / "gz/bomb.jsonl.gz")
    c.units["gz/bomb.jsonl.gz"] = rej("gzip bomb (2 GiB of zeros), .jsonl", "read", "gzip_too_large")
    write_gzip_bomb(c.source / "gz/bomb.warc.gz")
    c.units["gz/bomb.warc.gz"] = rej("gzip bomb (2 GiB of zeros), .warc", "read", "warc_line_too_long")
    bad_crc = bytearray(gzip.compress(_prose_text(GZ_TEXT).encode(), mtime=0))
    bad_crc[-8] ^= 0xFF
    c.add("gz/bad_crc.txt.gz", bytes(bad_crc), rej("gzip with a wrong CRC", "read", "gzip_invalid"))


# -- JSONL ---------------------------------------------------------------------------------------

JSONL_TEXT = "A well-formed JSON Lines record with its text field intact and a URL."
JSONL_HTML = "An HTML record inside JSON Lines, with its markup extracted."
FRAGMENT = ("An HTML fragment of one long paragraph, with no html or body element around it, is still a page "
            "whose words belong in the lake, as they would if the same markup sat inside a document.")


def _jsonl(c: Corpus) -> None:
    lines: list[tuple[bytes, Expect | None]] = [
        (json.dumps({"id": "ok", "url": "https://example.org/ok", "text": _prose_text(JSONL_TEXT)}).encode(),
         prose_doc("valid JSONL line", JSONL_TEXT)),
        (json.dumps({"html": _html(_paragraphs(JSONL_HTML))}).encode(), doc("JSONL line with html", JSONL_HTML)),
        (json.dumps({"html": f"<p>{FRAGMENT}</p>"}).encode(), doc("JSONL html fragment, one <p>", FRAGMENT)),
        (json.dumps({"html": f"<div><h2>Notes</h2><p>{FRAGMENT}</p></div>"}).encode(),
         doc("JSONL html fragment, one <div>", FRAGMENT)),
        (b'{"text": "unterminated', rej("invalid JSON", "read", "jsonl_invalid_json")),
        (b"", None),
        (b"   ", None),
        (json.dumps({"url": "https://example.org/no-text"}).encode(),
         rej("missing text", "read", "jsonl_missing_text")),
        (json.dumps({"text": ["a", "list"]}).encode(), rej("text of wrong type", "read", "jsonl_bad_field")),
        (json.dumps({"text": "fine", "url": 12}).encode(), rej("url of wrong type", "read", "jsonl_bad_field")),
        (json.dumps({"text": None}).encode(), rej("null text", "read", "jsonl_missing_text")),
        (b"[1, 2, 3]", rej("JSON but not an object", "read", "jsonl_not_object")),
        (b"[" * 100_000 + b"]" * 100_000, rej("JSON nested 100,000 deep", "read", "jsonl_invalid_json")),
        (b'{"text": "bad \xff\xfe utf-8"}', rej("invalid UTF-8 in the line", "read", "jsonl_invalid_json")),
        (b'{"text": "A lone \\ud800 surrogate, then a pair \\ud83d\\ude00.", "title": "\\udfff", "url": "https://x.example/\\ud800"}',
         doc("lone surrogates escaped in JSON", "A lone \ufffd surrogate, then a pair \U0001f600.")),
        (b'{"text": "Upper-case escapes: a lone \\uDBFF here, a pair \\uD83D\\uDE00 there."}',
         doc("lone surrogate in an upper-case JSON escape",
             "Upper-case escapes: a lone \ufffd here, a pair \U0001f600 there.")),
        (b'{"text": "NaN", "id": NaN}', rej("NaN id (not a string)", "read", "jsonl_bad_field")),
        (json.dumps({"text": "\u0000\u0007"}).encode(), rej("text of control characters only", "extract",
                                                           "no_main_content")),
    ]
    data = b"\n".join(line for line, _ in lines) + b"\r\n"
    c.add("data/records.jsonl", data, None)
    for number, (_, expect) in enumerate(lines, start=1):
        if expect is not None:
            c.units[f"data/records.jsonl#L{number}"] = expect


# -- WARC ----------------------------------------------------------------------------------------

WARC_TEXT = ["The first archived page was captured in full before the crawler stopped.",
             "The second archived page, with a declared windows-1252 charset: café."]


def _warc_bytes(gzipped: bool) -> tuple[bytes, list[int]]:
    """Three response records (HTML, cp1252 HTML, PNG) plus a request; returns bytes and record offsets."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=gzipped)
    offsets: list[int] = []
    pages = [("text/html; charset=utf-8", _html(_paragraphs(WARC_TEXT[0])).encode()),
             ("text/html; charset=windows-1252", _html(_paragraphs(WARC_TEXT[1])).encode("cp1252")),
             ("image/png", b"\x89PNG\r\n\x1a\n" + bytes(200))]
    for number, (ctype, body) in enumerate(pages):
        http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
        record = writer.create_warc_record(f"https://example.org/{number}", "response",
                                           payload=io.BytesIO(body), http_headers=http)
        offsets.append(out.tell())
        writer.write_record(record)
    request = writer.create_warc_record("https://example.org/0", "request",
                                        payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n"))
    writer.write_record(request)
    return out.getvalue(), offsets


def _warc(c: Corpus) -> None:
    whole, offsets = _warc_bytes(gzipped=False)
    c.add("warc/whole.warc", whole, None)
    c.units[f"warc/whole.warc#{offsets[0]}"] = doc("WARC response", WARC_TEXT[0])
    c.units[f"warc/whole.warc#{offsets[1]}"] = doc("WARC response, cp1252 header charset", WARC_TEXT[1])
    c.units[f"warc/whole.warc#{offsets[2]}"] = rej("WARC image response", "read", "unsupported_content_type")
    cut = offsets[1] + (offsets[2] - offsets[1]) // 2
    c.add("warc/truncated.warc", whole[:cut], None)
    c.units[f"warc/truncated.warc#{offsets[0]}"] = doc("WARC record before the cut", WARC_TEXT[0])
    c.units[f"warc/truncated.warc#{offsets[1]}"] = rej("WARC record cut in its body", "read", "warc_truncated")
    zipped, zoffsets = _warc_bytes(gzipped=True)
    c.add("warc/truncated.warc.gz", zipped[: zoffsets[1] + (zoffsets[2] - zoffsets[1]) // 2], None)
    c.units[f"warc/truncated.warc.gz#{zoffsets[0]}"] = doc("gzipped WARC record before the cut", WARC_TEXT[0])
    c.units[f"warc/truncated.warc.gz#{zoffsets[1]}"] = rej("gzipped WARC, member cut off", "read", "warc_truncated")
    c.add("warc/garbage.warc", b"this is not a WARC file at all\r\n\r\n" * 10, None)
    c.units["warc/garbage.warc#0"] = rej("not a WARC file", "read", "warc_invalid")


# -- links ---------------------------------------------------------------------------------------


def _links(c: Corpus) -> None:
    (c.outside / "secret.txt").write_text(_prose_text(SECRET))
    (c.outside / "dir").mkdir()
    (c.outside / "dir" / "also_secret.txt").write_text(_prose_text(SECRET))
    links = c.source / "links"
    links.mkdir()
    os.symlink(c.outside / "secret.txt", links / "escape.txt")
    c.units["links/escape.txt"] = rej("symlink to a file outside SOURCE", "read", "outside_source")
    os.symlink(c.outside / "dir", links / "escape_dir")
    c.units["links/escape_dir"] = rej("symlink to a folder outside SOURCE", "read", "outside_source")
    latin1_secret = os.fsencode(c.outside) + b"/secr\xe9t.txt"
    with open(latin1_secret, "wb") as out:
        out.write(_prose_text(SECRET).encode())
    os.symlink(latin1_secret, os.fsencode(links) + b"/escape_\xe9.txt")
    c.units["links/escape_\\xe9.txt"] = rej("non-UTF-8 symlink to a non-UTF-8 file outside", "read", "outside_source")
    os.symlink("../links", links / "loop")
    c.units["links/loop"] = rej("symlink loop", "read", "symlink_loop")
    os.symlink("nowhere.txt", links / "dangling.txt")
    c.units["links/dangling.txt"] = rej("dangling symlink", "read", "broken_link")
    os.symlink("self.txt", links / "self.txt")
    c.units["links/self.txt"] = rej("symlink to itself", "read", "broken_link")
    os.symlink("../enc/cp1252.txt", links / "inside.txt")
    c.units["links/inside.txt"] = prose_doc("symlink to a file inside SOURCE", CP1252)
    os.mkfifo(links / "fifo.txt")
    c.units["links/fifo.txt"] = rej("a FIFO named .txt (would block a reader)", "read", "not_a_file")


def build(root: Path) -> Corpus:
    """Write the hostile corpus under ``root`` and return what every unit must become."""
    c = Corpus(root / "source", root / "outside")
    c.source.mkdir(parents=True)
    c.outside.mkdir(parents=True)
    for part in (_encodings, _characters, _binary_and_size, _binary_jsonl, _html_pages, _gzip, _jsonl, _warc, _links):
        part(c)
    return c


def snapshot(folder: Path) -> dict[str, tuple[str, str]]:
    """Every entry under ``folder`` (not following links): files by content, links by target."""
    entries: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                entries[rel] = ("link", os.readlink(path))
            elif path.is_file():
                entries[rel] = ("file", f"{zlib.crc32(path.read_bytes()):08x}:{path.stat().st_size}")
            else:
                entries[rel] = ("other", "")
    return entries

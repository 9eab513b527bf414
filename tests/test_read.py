"""The read stage: discovery, units, decoding and rejects with reasons."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.read import ReadConfig, SourceError, discover, plan_shards, read_shard


def read_all(source: Path | str, config: ReadConfig | None = None):
    found = discover(str(source))
    docs, rejects = read_shard(found.files, config or ReadConfig())
    return docs, rejects + found.rejects


def test_directory_is_read_recursively_with_posix_relative_uris(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "deep page.html").write_text("<html><body><p>Hello there</p></body></html>")
    (tmp_path / "top.md").write_text("# Title\n\nSome text.")
    docs, rejects = read_all(tmp_path)
    assert sorted(d.source_uri for d in docs) == ["a/b/deep page.html", "top.md"]
    assert {d.source_uri: d.kind for d in docs} == {"a/b/deep page.html": "html", "top.md": "text"}
    assert rejects == []


def test_a_single_file_and_a_glob_are_sources(tmp_path: Path) -> None:
    for name in ("one.txt", "two.txt", "three.html"):
        (tmp_path / name).write_text(f"content of {name}")
    assert [d.source_uri for d in read_all(tmp_path / "one.txt")[0]] == ["one.txt"]
    assert sorted(d.source_uri for d in read_all(f"{tmp_path}/*.txt")[0]) == ["one.txt", "two.txt"]


def test_missing_source_fails_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        discover(str(tmp_path / "nope"))
    with pytest.raises(SourceError, match="matches no file"):
        discover(f"{tmp_path}/*.jsonl")


def test_doc_id_is_stable_and_depends_on_content(tmp_path: Path) -> None:
    page = tmp_path / "p.txt"
    page.write_text("first version")
    first = read_all(tmp_path)[0][0].doc_id
    assert read_all(tmp_path)[0][0].doc_id == first
    page.write_text("second version")
    assert read_all(tmp_path)[0][0].doc_id != first


def test_jsonl_lines_are_units_and_bad_lines_are_rejects(tmp_path: Path) -> None:
    lines = [
        json.dumps({"text": "plain body", "id": "a1", "url": "https://example.org/a"}),
        json.dumps({"html": "<p>html body</p>"}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"title": "no body"}),
        json.dumps({"text": 42}),
        "",
        json.dumps({"text": "last", "url": 7}),
    ]
    (tmp_path / "dump.jsonl").write_text("\n".join(lines) + "\n")
    docs, rejects = read_all(tmp_path)
    assert [(d.source_uri, d.kind, d.url) for d in docs] == [
        ("dump.jsonl#L1", "text", "https://example.org/a"),
        ("dump.jsonl#L2", "html", None),
    ]
    assert {r.source_uri: r.reason for r in rejects} == {
        "dump.jsonl#L3": "jsonl_invalid_json",
        "dump.jsonl#L4": "jsonl_not_object",
        "dump.jsonl#L5": "jsonl_missing_text",
        "dump.jsonl#L6": "jsonl_bad_field",
        "dump.jsonl#L8": "jsonl_bad_field",
    }
    assert all(r.detail and r.stage == "read" for r in rejects)


def test_gzip_inputs_are_read_and_broken_gzip_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "ok.txt.gz").write_bytes(gzip.compress(b"compressed words here"))
    (tmp_path / "lines.jsonl.gz").write_bytes(gzip.compress(b'{"text": "one"}\n{"text": "two"}\n'))
    (tmp_path / "invalid.txt.gz").write_bytes(b"this is not gzip at all")
    cut = gzip.compress(" ".join(str(i) for i in range(5000)).encode())
    (tmp_path / "cut.txt.gz").write_bytes(cut[: len(cut) // 2])
    docs, rejects = read_all(tmp_path)
    assert sorted(d.text for d in docs) == ["compressed words here", "one", "two"]
    assert {r.source_uri: r.reason for r in rejects} == {"invalid.txt.gz": "gzip_invalid",
                                                          "cut.txt.gz": "gzip_truncated"}


def test_gzip_bomb_and_oversized_units_hit_their_limits(tmp_path: Path) -> None:
    (tmp_path / "bomb.txt.gz").write_bytes(gzip.compress(b"\0" * (8 << 20)))
    (tmp_path / "big.txt").write_text("word " * 50_000)
    lines = [json.dumps({"text": "x" * 300_000}), json.dumps({"text": "ok"})]
    (tmp_path / "lines.jsonl").write_text("\n".join(lines) + "\n")
    config = ReadConfig(max_unit_bytes=200_000, max_inflated_bytes=100_000)
    docs, rejects = read_all(tmp_path, config)
    assert [d.source_uri for d in docs] == ["lines.jsonl#L2"]
    assert {r.source_uri: r.reason for r in rejects} == {
        "bomb.txt.gz": "gzip_too_large", "big.txt": "unit_too_large", "lines.jsonl#L1": "unit_too_large"}


def test_binary_empty_and_unknown_files_are_rejected_with_reasons(tmp_path: Path) -> None:
    (tmp_path / "image.html").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_text("   \n\t\n")
    (tmp_path / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    docs, rejects = read_all(tmp_path)
    assert docs == []
    assert {r.source_uri: r.reason for r in rejects} == {
        "image.html": "binary", "empty.txt": "empty", "blank.md": "empty", "sheet.xlsx": "unsupported_type"}


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


def test_warc_response_records_are_units_with_url_and_offset(corpora: Path) -> None:
    docs, rejects = read_all(corpora / "warc_samples_dolma" / "sample-0000.warc.gz")
    assert rejects == []
    assert len(docs) >= 10
    first = docs[0]
    assert first.source_uri == "sample-0000.warc.gz#865"
    assert first.url == "https://www.semanticscholar.org/research/research-team"
    assert first.kind == "html" and "<html" in first.text.lower()


def test_truncated_warc_keeps_the_records_before_the_damage(tmp_path: Path, corpora: Path) -> None:
    raw = gzip.decompress((corpora / "warc_samples_dolma" / "sample-0000.warc.gz").read_bytes())
    (tmp_path / "cut.warc").write_bytes(raw[: len(raw) // 2])
    docs, rejects = read_all(tmp_path)
    assert len(docs) >= 3
    assert len(rejects) <= 2 and all(r.reason in {"warc_truncated", "empty"} for r in rejects)
    assert any(r.reason == "warc_truncated" for r in rejects)


def test_symlinks_out_of_source_and_loops_are_not_followed(tmp_path: Path) -> None:
    source, outside = tmp_path / "src", tmp_path / "outside"
    source.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("do not read me")
    (source / "real.txt").write_text("inside")
    os.symlink(outside / "secret.txt", source / "escape.txt")
    os.symlink(outside, source / "escape_dir")
    os.symlink(source, source / "loop")
    docs, rejects = read_all(source)
    assert [d.source_uri for d in docs] == ["real.txt"]
    assert {r.source_uri: r.reason for r in rejects} == {
        "escape.txt": "outside_source", "escape_dir": "outside_source", "loop": "symlink_loop"}


def test_shards_respect_file_and_byte_limits(tmp_path: Path) -> None:
    for i in range(7):
        (tmp_path / f"{i}.txt").write_text("x" * 100)
    files = discover(str(tmp_path)).files
    shards = plan_shards(files, ReadConfig(shard_files=3))
    assert [len(s) for s in shards] == [3, 3, 1]
    assert [len(s) for s in plan_shards(files, ReadConfig(shard_bytes=250))] == [2, 2, 2, 1]


def test_the_last_shards_are_smaller_so_that_workers_finish_together(tmp_path: Path) -> None:
    for i in range(8):  # 8 files of ~20 KB: one a shard of 25 KB
        lines = [json.dumps({"text": f"Document {i}-{j}. " + "word " * 200}) for j in range(20)]
        (tmp_path / f"{i}.jsonl").write_text("\n".join(lines) + "\n")
    config = ReadConfig(shard_bytes=25_000)
    found = discover(str(tmp_path))
    shards = plan_shards(found.files, config)
    sizes = [sum(item.size for item in shard) for shard in shards]
    assert len(shards) > 8 and all(size <= 25_000 for size in sizes)
    assert all(size < 25_000 / 4 + 1_100 for size in sizes[8 - 4:])  # a piece ends at the line that reaches it
    assert [d.doc_id for shard in shards for d in read_shard(shard, config)[0]] == [
        d.doc_id for d in read_shard(found.files, config)[0]]


def test_a_file_larger_than_a_shard_is_read_in_chunks_of_about_the_shard_size(tmp_path: Path) -> None:
    from flows.shard import read_chunks

    lines = [json.dumps({"text": f"Document {i}. " + "word " * 200}) for i in range(40)]
    lines.insert(7, "not json")
    (tmp_path / "dump.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    config = ReadConfig(shard_bytes=5_000)
    found = discover(str(tmp_path))
    assert len(plan_shards(found.files, config)) == 1  # a compressed file cannot be cut: one shard
    chunks = list(read_chunks(0, found.files, config, np.empty(0, np.uint64)))
    assert len(chunks) > 1
    assert all(sum(len(d.text) for d in c.docs) < config.shard_bytes + 1_100 for c in chunks)
    assert [d.source_uri for c in chunks for d in c.docs] == [d.source_uri for d in read_all(tmp_path)[0]]
    assert sum(len(c.rejects) for c in chunks) == 1
    assert sum(c.counts["units"] for c in chunks) == 41
    assert [c.counts["files"] for c in chunks] == [0] * (len(chunks) - 1) + [1]


_LINE = st.one_of(
    st.text(max_size=40).map(lambda t: json.dumps({"text": t or "x"}).encode()),  # a unit
    st.binary(max_size=30).filter(lambda b: b"\n" not in b),  # garbage or an empty line
    st.just(b'{"text": "' + b"y" * 150 + b'"}'),  # longer than max_unit_bytes below
)


@settings(max_examples=40, deadline=None)
@given(lines=st.lists(_LINE, max_size=30), shard_bytes=st.integers(1, 300), crlf=st.booleans(),
       final_newline=st.booleans())
def test_a_jsonl_file_split_into_pieces_reads_as_the_whole_file(
        lines: list[bytes], shard_bytes: int, crlf: bool, final_newline: bool) -> None:
    config = ReadConfig(shard_bytes=shard_bytes, max_unit_bytes=120)
    ending = b"\r\n" if crlf else b"\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dump.jsonl"
        path.write_bytes(ending.join(lines) + (ending if final_newline and lines else b""))
        found = discover(str(path))
        whole = read_shard(found.files, ReadConfig(max_unit_bytes=120))
        shards = plan_shards(found.files, config)
        pieces = [read_shard(shard, config) for shard in shards]
    assert [(d.doc_id, d.source_uri, d.text) for d in whole[0]] == [
        (d.doc_id, d.source_uri, d.text) for docs, _ in pieces for d in docs]
    assert [(r.unit_id, r.source_uri, r.reason) for r in whole[1]] == [
        (r.unit_id, r.source_uri, r.reason) for _, rejects in pieces for r in rejects]
    assert sum(item.size for shard in shards for item in shard) == path_size(lines, ending, final_newline)


def path_size(lines: list[bytes], ending: bytes, final_newline: bool) -> int:
    return len(ending.join(lines) + (ending if final_newline and lines else b""))


def test_a_large_jsonl_file_is_cut_into_shards_at_line_starts(tmp_path: Path) -> None:
    lines = [json.dumps({"text": f"Document {i}. " + "word " * 200}) for i in range(40)]
    (tmp_path / "dump.jsonl").write_text("\n".join(lines) + "\n")
    shards = plan_shards(discover(str(tmp_path)).files, ReadConfig(shard_bytes=5_000))
    assert len(shards) == 8  # 40 lines of ~1,020 bytes: 5 lines (>= 5,000 bytes) a piece
    assert [item.first_line for shard in shards for item in shard] == list(range(1, 41, 5))
    assert all(len(shard) == 1 and shard[0].size >= 5_000 for shard in shards[:-1])

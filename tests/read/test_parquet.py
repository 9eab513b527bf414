"""Parquet inputs: one unit per row, read a row group at a time, stable ids, a reject for every fault."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.document import Document, Reject
from flows.read import ReadConfig, discover, iter_units, plan_shards, read_shard


def write(path: Path, columns: dict[str, Any], **options: Any) -> Path:
    pq.write_table(pa.table(columns), path, **options)
    return path


def read_all(source: Path, config: ReadConfig | None = None) -> tuple[list[Any], list[Any]]:
    found = discover(str(source))
    docs, rejects = read_shard(found.files, config or ReadConfig())
    return docs, rejects + found.rejects


def test_each_row_is_a_unit_numbered_from_one_with_its_fields(tmp_path: Path) -> None:
    write(tmp_path / "pages.parquet", {
        "text": ["first body", "second body"], "id": ["a1", None], "url": ["https://example.org/a", None],
        "title": ["A title", None], "lang": ["en", "fr"]})
    write(tmp_path / "html.parquet", {"html": ["<p>markup</p>"]})
    docs, rejects = read_all(tmp_path)
    assert rejects == []
    assert [(d.source_uri, d.kind, d.text, d.url, d.title) for d in docs] == [
        ("html.parquet#R1", "html", "<p>markup</p>", None, None),
        ("pages.parquet#R1", "text", "first body", "https://example.org/a", "A title"),
        ("pages.parquet#R2", "text", "second body", None, None)]
    assert docs[1].meta["input_id"] == "a1" and "input_id" not in docs[2].meta
    assert docs[1].meta["bytes"] == len(b"first body")


def test_text_wins_over_html_when_both_columns_exist(tmp_path: Path) -> None:
    write(tmp_path / "both.parquet", {"text": ["clean text"], "html": ["<p>raw</p>"]})
    docs, _ = read_all(tmp_path)
    assert [(d.kind, d.text) for d in docs] == [("text", "clean text")]


def test_ids_are_stable_across_reads_and_follow_the_row_content(tmp_path: Path) -> None:
    rows = {"text": ["one", "two", "three"], "url": ["u1", "u2", "u3"]}
    path = write(tmp_path / "p.parquet", rows)
    first = [d.doc_id for d in read_all(path)[0]]
    assert [d.doc_id for d in read_all(path)[0]] == first
    assert len(set(first)) == 3
    write(path, {"text": ["one", "TWO", "three"], "url": ["u1", "u2", "u3x"]})
    changed = [d.doc_id for d in read_all(path)[0]]
    assert changed[0] == first[0]
    assert changed[1] != first[1]  # the text changed
    assert changed[2] != first[2]  # the url changed: another unit
    write(path, rows, row_group_size=1, compression="zstd")  # the same rows stored otherwise: the same ids
    assert [d.doc_id for d in read_all(path)[0]] == first


def test_every_bad_parquet_input_is_a_reject_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "fake.parquet").write_bytes(b"PAR1 but not really a parquet file")
    good = write(tmp_path / "good.parquet", {"text": ["x " * 5000] * 50}, row_group_size=10)
    (tmp_path / "cut.parquet").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    write(tmp_path / "no_text.parquet", {"body": ["words"]})
    write(tmp_path / "int_text.parquet", {"text": [1, 2]})
    write(tmp_path / "int_id.parquet", {"text": ["fine"], "id": [7]})
    write(tmp_path / "cells.parquet", {"text": ["ok", None, "", "  \n", "y" * 2_000]})
    (tmp_path / "zipped.parquet.gz").write_bytes(gzip.compress(good.read_bytes()))
    good.unlink()
    docs, rejects = read_all(tmp_path, ReadConfig(max_unit_bytes=1_000))
    assert [d.source_uri for d in docs] == ["cells.parquet#R1"]
    assert {r.source_uri: r.reason for r in rejects} == {
        "fake.parquet": "parquet_invalid", "cut.parquet": "parquet_invalid",
        "no_text.parquet": "parquet_missing_text", "int_text.parquet": "parquet_bad_field",
        "int_id.parquet": "parquet_bad_field", "cells.parquet#R2": "empty", "cells.parquet#R3": "empty",
        "cells.parquet#R4": "empty", "cells.parquet#R5": "unit_too_large", "zipped.parquet.gz": "unsupported_type"}
    assert all(r.detail and r.stage == "read" for r in rejects)
    assert len({r.unit_id for r in rejects}) == len(rejects)


def test_invalid_utf8_in_a_string_column_is_a_reject(tmp_path: Path) -> None:
    column = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(b"\x00\x00\x00\x00\x02\x00\x00\x00"
                                                                       b"\x04\x00\x00\x00"),
                                                     pa.py_buffer(b"ok\xff\xfe")])
    pq.write_table(pa.table({"text": column}), tmp_path / "bad.parquet")
    docs, rejects = read_all(tmp_path)
    assert [d.text for d in docs] == ["ok"]
    assert [(r.source_uri, r.reason) for r in rejects] == [("bad.parquet#R2", "parquet_bad_field")]


def test_a_parquet_file_is_read_a_row_group_at_a_time(tmp_path: Path) -> None:
    import random

    words = [f"w{i}" for i in range(5000)]
    rows = [" ".join(random.Random(n).choices(words, k=400)) for n in range(2400)]  # 24 row groups
    path = write(tmp_path / "big.parquet", {"text": rows}, row_group_size=100)
    group_bytes = pq.ParquetFile(path).metadata.row_group(0).total_byte_size  # decoded
    baseline = pa.total_allocated_bytes()  # Arrow's memory pool: what Arrow holds for the reader
    peak = count = 0
    for _ in iter_units(discover(str(path)).files, ReadConfig()):
        peak = max(peak, pa.total_allocated_bytes() - baseline)
        count += 1
    assert count == 2400
    assert pq.read_table(path).nbytes > 20 * group_bytes  # what reading the file at once would hold
    assert peak < 4 * group_bytes  # measured: ~3 (a row group's stored bytes, a decoded batch, its copy)


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.text(max_size=60), max_size=40), row_group_size=st.integers(1, 12),
       shard_bytes=st.integers(1, 3_000))
def test_parquet_rows_round_trip_to_one_unit_each(texts: list[str], row_group_size: int, shard_bytes: int) -> None:
    config = ReadConfig(shard_bytes=shard_bytes)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.parquet"
        pq.write_table(pa.table({"text": pa.array(texts, pa.string())}), path, row_group_size=row_group_size)
        found = discover(str(path))
        units = [unit for shard in plan_shards(found.files, config) for unit in iter_units(shard, config)]
    assert [u.source_uri for u in units] == [f"rows.parquet#R{n}" for n in range(1, len(texts) + 1)]
    for unit, text in zip(units, texts, strict=True):
        if text.strip():
            assert isinstance(unit, Document) and unit.text == text
        else:
            assert isinstance(unit, Reject) and unit.reason == "empty"

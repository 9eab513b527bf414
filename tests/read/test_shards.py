"""Shard plans: file and byte limits, a smaller tail, big JSONL and Parquet files cut into pieces read as the whole."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.read import ReadConfig, discover, plan_shards, read_shard
from flows.read.shards import stored_size
from tests.read.helpers import read_all


def write(path: Path, columns: dict[str, Any], **options: Any) -> Path:
    pq.write_table(pa.table(columns), path, **options)
    return path


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


def test_a_large_parquet_file_is_cut_into_shards_between_row_groups(tmp_path: Path) -> None:
    rows = [f"Document {i}. " + "word " * 200 for i in range(40)]
    path = write(tmp_path / "dump.parquet", {"text": rows}, row_group_size=5, compression="none")
    config = ReadConfig(shard_bytes=10_000)  # two row groups (~5,100 bytes each) a piece
    shards = plan_shards(discover(str(path)).files, config)
    assert len(shards) == 4
    assert [(item.start, item.stop, item.first_line) for shard in shards for item in shard] == [
        (0, 2, 1), (2, 4, 11), (4, 6, 21), (6, None, 31)]
    assert sum(item.size for shard in shards for item in shard) == sum(
        stored_size(pq.ParquetFile(path).metadata.row_group(g)) for g in range(8))
    whole = read_all(path)[0]
    pieces = [d for shard in shards for d in read_shard(shard, config)[0]]
    assert [(d.doc_id, d.source_uri, d.text) for d in pieces] == [(d.doc_id, d.source_uri, d.text) for d in whole]

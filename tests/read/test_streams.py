"""Byte streams: gzip inflated within its limits, broken gzip and oversized units rejected."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from flows.read import ReadConfig
from tests.read.helpers import read_all


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

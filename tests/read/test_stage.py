"""The read stage: a file of a type not read, a binary or empty file, each a reject with its reason."""

from __future__ import annotations

from pathlib import Path

from tests.read.helpers import read_all


def test_binary_empty_and_unknown_files_are_rejected_with_reasons(tmp_path: Path) -> None:
    (tmp_path / "image.html").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_text("   \n\t\n")
    (tmp_path / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    docs, rejects = read_all(tmp_path)
    assert docs == []
    assert {r.source_uri: r.reason for r in rejects} == {
        "image.html": "binary", "empty.txt": "empty", "blank.md": "empty", "sheet.xlsx": "unsupported_type"}

"""Units: ids stable across runs and following the content."""

from __future__ import annotations

from pathlib import Path

from tests.read.helpers import read_all


def test_doc_id_is_stable_and_depends_on_content(tmp_path: Path) -> None:
    page = tmp_path / "p.txt"
    page.write_text("first version")
    first = read_all(tmp_path)[0][0].doc_id
    assert read_all(tmp_path)[0][0].doc_id == first
    page.write_text("second version")
    assert read_all(tmp_path)[0][0].doc_id != first

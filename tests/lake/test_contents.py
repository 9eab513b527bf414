"""What the lake holds: the unit ids already in it."""

from __future__ import annotations

from pathlib import Path

from flows import lake as lakefs
from flows.document import Reject
from tests.lake.test_commit import staged_run


def test_known_ids_cover_documents_and_rejects(tmp_path: Path) -> None:
    paths, moves = staged_run(tmp_path)
    lakefs.commit(paths, moves)
    unit = "0123456789abcdef0123456789abcdef"
    table = lakefs.rejects_table([Reject(unit, "b.txt", "read", "binary", "x")], "r2")
    lakefs.write_parquet_atomic(table, tmp_path / "rejects" / "ingest_date=2026-01-02" / "run-r2.parquet")
    known = lakefs.known_unit_ids(tmp_path)
    assert lakefs.is_known(known, unit)
    assert not lakefs.is_known(known, "f" * 32)

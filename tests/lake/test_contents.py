"""What the lake holds: the unit ids in its tables, as the scan that builds the known-units store finds them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flows import lake as lakefs
from flows.document import Reject
from tests.lake.test_commit import staged_run


def test_the_scan_finds_the_ids_of_documents_and_rejects(tmp_path: Path) -> None:
    paths, moves = staged_run(tmp_path)
    lakefs.commit(paths, moves)
    unit = "0123456789abcdef0123456789abcdef"
    table = lakefs.rejects_table([Reject(unit, "b.txt", "read", "binary", "x"), Reject("", "c", "read", "x", "")], "r2")
    lakefs.write_parquet_atomic(table, tmp_path / "rejects" / "ingest_date=2026-01-02" / "run-r2.parquet")
    keys = lakefs.known_unit_ids(tmp_path)
    assert keys.tolist() == sorted([lakefs.unit_key("u1"), lakefs.unit_key(unit)])  # an empty id is no unit
    assert keys.dtype == np.uint64

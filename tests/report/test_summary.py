"""Run reports: whole-run counts from the staged shards, the counts table and the markdown of a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from flows import lake as lakefs
from flows import report
from flows.document import Reject
from flows.storage import Store

RUN_ID = "20260101T000000Z-report"


def _manifest() -> dict[str, Any]:
    return {"run_id": RUN_ID, "counts": {
        "units": 7, "skipped_known": 1, "documents": 4, "duplicates": 1,
        "stages": {"normalize": {"in": 5, "out": 5}, "extract": {"in": 5, "out": 4}},
        "reject_reasons": {"extract/empty": 1, "read/binary": 1}}}


def test_count_rows_lists_the_stages_then_the_reject_reasons() -> None:
    assert report.count_rows(_manifest()) == [
        {"what": "units read", "count": 7},
        {"what": "skipped (already in the lake)", "count": 1},
        {"what": "stage normalize: in / out", "count": "5 / 5"},
        {"what": "stage extract: in / out", "count": "5 / 4"},
        {"what": "documents written", "count": 4},
        {"what": "of which duplicates", "count": 1},
        {"what": "reject extract/empty", "count": 1},
        {"what": "reject read/binary", "count": 1},
    ]


def test_run_markdown_shows_the_scores_and_the_largest_clusters(tmp_path: Path) -> None:
    table = pa.table({"doc_id": ["a", "b", "c", "d"], "quality_score": [0.05, 0.55, 0.58, 1.0],
                      "dup_cluster": ["a", "b", "b", "d"], "is_duplicate": [False, False, True, False]})
    lakefs.write_parquet_atomic(table, tmp_path / "documents" / "ingest_date=2026-01-01" / f"run-{RUN_ID}.parquet")
    markdown = report.run_markdown(Store(str(tmp_path)), _manifest())
    assert markdown.startswith(f"# siftlake run {RUN_ID}\n")
    assert "| 0.0-0.1 | 1 |" in markdown and "| 0.5-0.6 | 2 |" in markdown and "| 0.9-1.0 | 1 |" in markdown
    assert "| b | 1 |" in markdown and "| (none) | 0 |" not in markdown


def test_run_markdown_of_a_run_without_documents(tmp_path: Path) -> None:
    assert report.run_markdown(Store(str(tmp_path)), _manifest()).endswith("No new documents in this run.")


def test_run_counts_add_up_every_staged_shard_and_the_listing_rejects(tmp_path: Path) -> None:
    paths = lakefs.RunPaths(Store(str(tmp_path)), RUN_ID, "2026-01-01")
    for number, units in ((0, 3), (1, 2)):
        summary = {"counts": {"files": 1, "units": units, "skipped_known": 0, "normalize_in": units,
                              "normalize_out": units},
                   "seconds": {"read": 0.5}, "reasons": {"extract/empty": 1}}
        paths.shard_summary_file(number).parent.mkdir(parents=True, exist_ok=True)
        paths.shard_summary_file(number).write_text(json.dumps(summary))
        lakefs.write_parquet_atomic(pa.table({"doc_id": ["x"]}), paths.shard_file(number))
    listing = lakefs.rejects_table([Reject("u", "z.bin", "read", "binary", "")], RUN_ID)
    lakefs.write_parquet_atomic(listing, paths.staging / "run.rejects.parquet")
    counts, seconds = report.run_counts(paths, {"documents": 3, "duplicates": 1})
    assert counts["files"] == 2 and counts["units"] == 6 and counts["unique"] == 2
    assert counts["reject_reasons"] == {"extract/empty": 2, "read/binary": 1} and counts["rejects"] == 3
    assert counts["stages"]["normalize"] == {"in": 5, "out": 5} and seconds == {"read": 1.0}

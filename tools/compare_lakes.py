"""Compare two lakes row by row: the same documents and rejects, every column but the run's id and date.

A behaviour-preserving change (a refactoring, a dependency bump) must give the same lake from the same input:

    python -m tools.compare_lakes LAKE_BEFORE LAKE_AFTER

prints, per table, whether the rows are the same and how many, and exits 1 when a table differs. Local lakes
only (duckdb reads the Parquet files directly).
"""

from __future__ import annotations

import argparse
import sys

import duckdb

TABLES = ("documents", "rejects")
IGNORED = ("run_id", "ingest_date")  # differ between any two runs


def table_rows(lake: str, table: str) -> tuple[list[str], list[str]]:
    """The table's columns (less the ignored ones) and its rows as sorted text; none when it has no files."""
    try:
        relation = duckdb.sql(f"SELECT * FROM read_parquet('{lake}/{table}/**/*.parquet', hive_partitioning = true, "
                              "union_by_name = true)")
    except duckdb.IOException:
        return [], []
    columns = [c for c in relation.columns if c not in IGNORED]
    return columns, sorted(repr(row) for row in relation.select(*columns).fetchall())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    args = parser.parse_args(argv)
    differ = 0
    for table in TABLES:
        before, after = table_rows(args.before, table), table_rows(args.after, table)
        same = before == after
        differ += not same
        print(f"{table}: {'same' if same else 'DIFFERENT'} ({len(before[1])} rows, {len(before[0])} columns before; "
              f"{len(after[1])} rows, {len(after[0])} columns after)")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())

"""The lake's documents through duckdb: the files, the predicate checked, the rows streamed in batches.

The documents' files are listed once, so an export reads one snapshot of the lake even while a run
commits. The predicate must parse as one SQL expression (duckdb's own parser); the query embeds the
expression as duckdb prints it back from the parse tree, so it cannot close the WHERE clause or add a
statement. A bucket lake is read through its fsspec filesystem (``register_filesystem``), as readers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from flows.export.options import ExportUsageError, output_name
from flows.lake import DOCUMENTS, PARTITION_KEY, documents_schema, table_files
from flows.storage import Store

DOCUMENTS_VIEW = "documents"
HIDDEN = "__"  # prefix of the columns the export computes for itself (stats, shuffle key); never written
BATCH_ROWS = 2048


def connect(scratch: Path, memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(config={"memory_limit": memory_limit, "threads": threads,
                                  "temp_directory": str(scratch), "preserve_insertion_order": True})


def data_files(lake: Store) -> list[str]:
    """The documents' Parquet files as readers find them, sorted: the lake's order."""
    return [lake.url(key) for key in table_files(lake, DOCUMENTS)]


def register_documents(con: duckdb.DuckDBPyConnection, lake: Store, files: Sequence[str]) -> None:
    """The view ``documents`` over ``files`` (hive partitions, schemas of different runs unified by name)."""
    if lake.remote:
        con.register_filesystem(lake.fs)
    if files:
        listed = ", ".join(_literal(f) for f in files)
        con.execute(f"CREATE VIEW {DOCUMENTS_VIEW} AS SELECT * FROM read_parquet([{listed}], "
                    "hive_partitioning = true, union_by_name = true)")
        return
    from flows.quality import SIGNAL_NAMES  # an empty lake: its schema, no rows

    schema = documents_schema(SIGNAL_NAMES).append(pa.field(PARTITION_KEY, pa.date32()))
    con.register("__empty_documents", schema.empty_table())
    con.execute(f"CREATE VIEW {DOCUMENTS_VIEW} AS SELECT * FROM __empty_documents")


def lake_columns(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Column name to duckdb type, in the lake's order."""
    return {str(name): str(kind) for name, kind, *_ in con.execute(f"DESCRIBE {DOCUMENTS_VIEW}").fetchall()}


def _listing(columns: dict[str, str]) -> str:
    return "the documents' columns: " + ", ".join(f"{name} ({kind})" for name, kind in columns.items())


def check_columns(requested: Sequence[str], columns: dict[str, str]) -> None:
    unknown = [c for c in requested if c not in columns]
    if unknown:
        raise ExportUsageError(f"--columns: no column {', '.join(unknown)} in the lake; {_listing(columns)}")
    hidden = [c for c in requested if c.startswith(HIDDEN)]
    if hidden:
        raise ExportUsageError(f"--columns: {', '.join(hidden)} cannot be exported (names starting with {HIDDEN})")


def check_where(con: duckdb.DuckDBPyConnection, where: str | None, columns: dict[str, str]) -> str:
    """The predicate as duckdb prints it back once parsed and bound; ExportUsageError when it is not one."""
    if where is None or not where.strip():
        return "true"
    try:
        expression = str(duckdb.SQLExpression(where))
    except duckdb.Error as err:
        raise ExportUsageError(f"--where is not one SQL expression: {err}\n{_listing(columns)}") from err
    try:
        con.execute(f"DESCRIBE SELECT 1 FROM {DOCUMENTS_VIEW} WHERE ({expression})").fetchall()
    except duckdb.Error as err:
        raise ExportUsageError(f"--where: {err}\n{_listing(columns)}") from err
    return expression


def select_sql(columns: Sequence[str], predicate: str, fmt: str, shuffle: bool) -> str:
    """The export's query: the kept documents matching ``predicate``, the columns asked for (or one JSON
    line each), and hidden columns for the manifest's counts and the shuffle's key."""
    if fmt == "parquet":
        shown = [f"{_ident(c)} AS {_ident(output_name(c))}" for c in columns]
    else:
        pairs = ", ".join(f"{_literal(output_name(c))}, {_ident(c)}" for c in columns)
        shown = [f"encode(json_object({pairs}) || chr(10)) AS {HIDDEN}line"]
    hidden = [f"lang AS {HIDDEN}lang", f"length(text) AS {HIDDEN}chars",
              rf"len(regexp_extract_all(text, '\S+')) AS {HIDDEN}words", f"run_id AS {HIDDEN}run"]
    if shuffle:
        hidden.append(f"doc_id AS {HIDDEN}doc")
    return (f"SELECT {', '.join([*shown, *hidden])} FROM {DOCUMENTS_VIEW} "
            f"WHERE NOT is_duplicate AND ({predicate})")


def stream(con: duckdb.DuckDBPyConnection, sql: str) -> pa.RecordBatchReader:
    """The rows in the lake's order (files by path, rows as written), a batch at a time."""
    reader: pa.RecordBatchReader = con.sql(sql).to_arrow_reader(BATCH_ROWS)
    return reader


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

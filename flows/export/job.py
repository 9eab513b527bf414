"""One export, end to end: check everything, stream the rows into shards, count them, write the manifest."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pyarrow as pa

from flows.export import output, query, shuffle
from flows.export.options import ExportOptions, output_name
from flows.export.shards import LINE, ShardWriter
from flows.storage import Store, redact

MANIFEST_FORMAT = "siftlake-export/1"
UNKNOWN_LANG = "und"  # ISO 639-2 "undetermined": documents without a language


class Counts:
    """Documents, characters and words per language, and documents per run, of what was written."""

    def __init__(self) -> None:
        self.languages: dict[str, dict[str, int]] = {}
        self.runs: dict[str, int] = {}

    def add(self, table: pa.Table) -> None:
        h = query.HIDDEN
        by_lang = table.group_by(f"{h}lang").aggregate([(f"{h}chars", "sum"), (f"{h}words", "sum"),
                                                        ([], "count_all")])
        for row in by_lang.to_pylist():
            lang = row[f"{h}lang"] or UNKNOWN_LANG
            entry = self.languages.setdefault(lang, {"documents": 0, "characters": 0, "words": 0})
            entry["documents"] += row["count_all"]
            entry["characters"] += row[f"{h}chars_sum"] or 0
            entry["words"] += row[f"{h}words_sum"] or 0
        for row in table.group_by(f"{h}run").aggregate([([], "count_all")]).to_pylist():
            self.runs[row[f"{h}run"]] = self.runs.get(row[f"{h}run"], 0) + row["count_all"]

    def total(self) -> dict[str, int]:
        return {key: sum(entry[key] for entry in self.languages.values())
                for key in ("documents", "characters", "words")}


def export(options: ExportOptions) -> dict[str, Any]:
    """Export the lake's kept documents as ``options`` says; return the manifest written last in OUT."""
    lake = Store(options.lake, options.storage_options)
    out = Store(options.out, options.storage_options)
    with tempfile.TemporaryDirectory(prefix="siftlake-export-", dir=options.scratch_dir) as scratch:
        con = query.connect(Path(scratch), options.memory_limit, options.threads)
        query.register_documents(con, lake, query.data_files(lake))
        columns = query.lake_columns(con)
        query.check_columns(options.source_columns, columns)
        predicate = query.check_where(con, options.where, columns)
        output.prepare(out, options.replace)
        target = output.Target(out, Path(scratch))
        sql = query.select_sql(options.source_columns, predicate, options.format, options.shuffle_seed is not None)
        reader = query.stream(con, sql)
        schema = _written_schema(reader.schema)
        writer = ShardWriter(options.format, options.shard_bytes, schema, target.workdir, target.publish)
        counts = Counts()
        for table in _ordered(reader, options, Path(scratch)):
            counts.add(table)
            writer.add(table.select(schema.names))
        shards = writer.finish()
        con.close()
        listed = [{"path": target.key(s.name), "rows": s.rows, "bytes": s.bytes, "sha256": s.sha256} for s in shards]
        manifest = _manifest(options, lake, predicate, counts, listed)
        target.write_manifest(manifest)
    return manifest


def _written_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f for f in schema if not f.name.startswith(query.HIDDEN) or f.name == LINE])


def _ordered(reader: pa.RecordBatchReader, options: ExportOptions, scratch: Path) -> Iterator[pa.Table]:
    tables: Iterable[pa.Table] = (pa.Table.from_batches([b]) for b in reader)
    if options.shuffle_seed is None:
        return iter(tables)
    return shuffle.shuffled(tables, options.shuffle_seed, scratch, options.bucket_bytes)


def _versions(*names: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _runs(lake: Store, documents: dict[str, int]) -> list[dict[str, Any]]:
    from flows.lake import read_manifests

    manifests = {m.get("run_id"): m for m in read_manifests(lake)}
    runs = []
    for run_id in sorted(documents):
        manifest = manifests.get(run_id, {})
        runs.append({"run_id": run_id, "documents": documents[run_id],
                     "source": manifest.get("config", {}).get("source"),
                     "started_at": manifest.get("started_at"), "finished_at": manifest.get("finished_at")})
    return runs


def _manifest(options: ExportOptions, lake: Store, predicate: str, counts: Counts,
              shards: list[dict[str, Any]]) -> dict[str, Any]:
    order = "lake" if options.shuffle_seed is None else "xxh3_64(doc_id, seed)"
    return {
        "format_version": MANIFEST_FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "lake": lake.url(),
        "storage_options": redact(options.storage_options),
        "runs": _runs(lake, counts.runs),
        "where": options.where,
        "predicate": f"NOT is_duplicate AND ({predicate})",
        "columns": [output_name(c) for c in options.source_columns],
        "source_columns": options.source_columns,
        "format": options.format,
        "shard_bytes": options.shard_bytes,
        "shuffle_seed": options.shuffle_seed,
        "order": order,
        "totals": counts.total(),
        "languages": dict(sorted(counts.languages.items())),
        "shards": shards,
        "libraries": _versions("siftlake", "duckdb", "pyarrow"),
    }

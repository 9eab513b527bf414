"""``siftlake export``: its arguments and what it prints. Light to import: the work is imported when run."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from flows.export.options import DEFAULT_COLUMNS, FORMATS, ExportError, ExportOptions, ExportUsageError, parse_size

EXIT_FAILED = 1
EXIT_USAGE = 2


def add_parser(commands: Any) -> None:
    """The ``export`` subcommand, on the CLI's subparsers."""
    export = commands.add_parser("export", help="write the lake's kept documents as sized shards for training, "
                                 "with a manifest written last (README: Exporting a training set)")
    export.add_argument("out", help="folder or URI (s3://...) to write the shards and manifest.json into")
    export.add_argument("--lake", default="lake", help="root of the lake, a folder or a URI (default: lake)")
    export.add_argument("--where", help="duckdb predicate over the documents' columns, "
                        "e.g. \"quality_score >= 0.5 AND lang IN ('en','de')\" (duplicates are always left out)")
    export.add_argument("--columns", action="append", help="lake columns to write, comma-separated "
                        f"(default: {','.join(DEFAULT_COLUMNS)}); doc_id is written as id")
    export.add_argument("--format", choices=FORMATS, default="parquet", help="shard format (default: parquet)")
    export.add_argument("--shard-bytes", default="500MB", help="shard size: bytes, or 200KB, 500MB, 1GB "
                        "(powers of 1000) or KiB, MiB, GiB (powers of 1024); default 500MB")
    export.add_argument("--shuffle-seed", type=int, help="shuffle the documents by a hash of their doc_id "
                        "seeded with N (default: the lake's order)")
    export.add_argument("--replace", action="store_true", help="replace the export OUT already holds")
    export.add_argument("--memory-limit", default="128MB", help="duckdb's memory limit (default: 128MB)")
    export.add_argument("--threads", type=int, default=1, help="duckdb threads reading the lake (default: 1)")
    export.add_argument("--json", action="store_true", help="print the manifest's totals as one JSON object")


def _options(args: argparse.Namespace) -> ExportOptions:
    columns = DEFAULT_COLUMNS
    if args.columns:
        columns = tuple(c.strip() for group in args.columns for c in group.split(",") if c.strip())
    return ExportOptions(lake=args.lake, out=args.out, where=args.where, columns=columns, format=args.format,
                         shard_bytes=parse_size(args.shard_bytes), shuffle_seed=args.shuffle_seed,
                         replace=args.replace, memory_limit=args.memory_limit, threads=args.threads)


def main(args: argparse.Namespace) -> int:
    import duckdb
    import pyarrow as pa

    from flows.export.job import export
    from flows.storage import StorageError

    pa.set_memory_pool(pa.system_memory_pool())  # freed batches go back to the OS: memory stays flat
    try:
        options = _options(args)
        manifest = export(options)
    except ExportUsageError as err:
        print(f"siftlake: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (ExportError, StorageError, OSError, duckdb.Error) as err:
        print(f"siftlake: the export failed: {err}", file=sys.stderr)
        return EXIT_FAILED
    print(_summary(manifest, args.json, options.out))
    return 0


def _summary(manifest: dict[str, Any], as_json: bool, out: str) -> str:
    totals, shards = manifest["totals"], manifest["shards"]
    if as_json:
        return json.dumps({**totals, "shards": len(shards), "bytes": sum(s["bytes"] for s in shards),
                           "languages": manifest["languages"], "out": out}, sort_keys=True)
    lines = [f"exported {totals['documents']} documents ({totals['characters']} characters, {totals['words']} "
             f"words) in {len(shards)} shard(s), {sum(s['bytes'] for s in shards)} bytes, to {out}"]
    lines += [f"  {lang}: {entry['documents']} documents" for lang, entry in manifest["languages"].items()]
    return "\n".join(lines)

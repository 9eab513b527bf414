"""The ``siftlake`` command: ``siftlake ingest SOURCE [--lake DIR] [--json]``, ``siftlake report [--lake DIR]
[--run RUN_ID] [--out FILE.html]``, ``siftlake export --lake DIR OUT [...]``, ``siftlake forget --lake DIR
(--urls F | --domains F | --doc-ids F) --reason R [--with-copies]``, ``siftlake index migrate --lake DIR``,
``siftlake server``, ``siftlake config``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from pydantic import ValidationError

from flows import export, forget, local_api

EXIT_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siftlake", description="Document-ingestion ETL into a Parquet lake.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("ingest", help="ingest SOURCE (a file, a directory or a glob) into the lake")
    run.add_argument("source", help="file, directory (read recursively) or quoted glob pattern, local or a URI "
                     "(s3://, gs://, az://)")
    run.add_argument("--lake", default="lake", help="root of the lake: a folder or a URI such as s3://bucket/lake "
                     "(default: lake)")
    run.add_argument("--config", help="JSON file with IngestConfig fields (see README: Configuration)")
    run.add_argument("--json", action="store_true", help="print the run's counts as one JSON object on the last line")
    commands.add_parser("config", help="print the default configuration as JSON (a starting point for --config)")
    report = commands.add_parser("report", help="write one self-contained HTML page of charts about the lake or one "
                                 "run (README: The lake report)")
    report.add_argument("--lake", default="lake", help="root of the lake: a folder or a URI such as s3://bucket/lake "
                        "(default: lake)")
    report.add_argument("--run", metavar="RUN_ID", help="only this run's rows (its run_id) and its manifest "
                        "(default: the whole lake)")
    report.add_argument("--out", metavar="FILE.html", default="report.html",
                        help="where to write the page (default: report.html in the current folder; each run's own "
                        "page is also in the lake at LAKE/_reports/<run_id>.html)")
    server = commands.add_parser("server", help="the background Prefect API that runs share when no Prefect "
                                 "server is configured (README: Running it)")
    server.add_argument("action", choices=["start", "status", "stop"])
    export.add_parser(commands)
    forget.add_parser(commands)
    index = commands.add_parser("index", help="the lake's near-duplicate index: 'migrate' folds the segments of "
                                "older formats into the partitioned one at once (README: Dedup)")
    index.add_argument("action", choices=["migrate"])
    index.add_argument("--lake", default="lake", help="root of the lake, a folder or a URI (default: lake)")
    index.add_argument("--partitions", type=int, help="partitions of an index that does not record them yet "
                       "(default: dedup.partitions' default); an index that does keeps its own")
    index.add_argument("--lock-wait-s", type=float, default=0.0, help="wait up to this long for a run that "
                       "holds the lake (default: fail at once)")
    return parser


def _config(args: argparse.Namespace) -> Any:
    from flows.config import IngestConfig

    fields: dict[str, Any] = {}
    if args.config:
        with open(args.config, encoding="utf-8") as handle:
            fields = json.load(handle)
    fields.update(source=args.source, lake=args.lake)
    return IngestConfig.model_validate(fields)


# Without a Prefect server configured, the flow starts a temporary one; on a busy machine it needs
# longer than Prefect's 20 s default to come up.
_PREFECT_DEFAULTS = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
                     "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config":
        from flows.config import IngestConfig

        print(IngestConfig().model_dump_json(indent=2))
        return 0
    if args.command == "report":
        return _report(args.lake, args.run, args.out)
    if args.command == "export":
        return export.main(args)
    if args.command == "forget":
        return forget.main(args)
    if args.command == "index":
        return _index(args.lake, args.partitions, args.lock_wait_s)
    for key, value in _PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if args.command == "server":
        return _server(args.action)
    api = None
    try:
        # First, so that the server boots on another core while this process imports and checks.
        api = local_api.start_or_reuse()
        config = _config(args)
    except (OSError, ValueError, ValidationError) as err:
        print(f"siftlake: invalid configuration: {err}", file=sys.stderr)
        if api is not None and api.started_here:
            local_api.stop_one(api)
        return EXIT_USAGE
    if config.extract.sandbox and config.runner.local_kind(sandboxed_extraction=True) == "thread":
        from flows.extract import prestart

        prestart(config.runner.worker_count())  # the worker threads' extraction processes start up meanwhile
    return _ingest(config, args.json, api)


def _ingest(config: Any, as_json: bool, api: local_api.LocalApi | None) -> int:
    from flows.lake import LakeBusyError, check_not_busy
    from flows.storage import StorageError, Store, check_source

    try:  # before the flow starts: a run that cannot begin says so at once
        check_source(config.source, config.storage.options)
        lake = Store(config.lake, config.storage.options)
        lake.check_reachable()
        check_not_busy(lake, config.lock_wait_s)
    except (StorageError, LakeBusyError) as err:
        print(f"siftlake: {err}", file=sys.stderr)
        if api is not None and api.started_here:
            local_api.stop_one(api)  # started for this run, which cannot begin
        return EXIT_FAILED
    from flows.dedup import IncompatibleIndexError
    from flows.ingest import ingest
    from flows.read import SourceError

    try:
        with local_api.serving(api):
            counts = ingest(config)
    except (SourceError, LakeBusyError, IncompatibleIndexError, StorageError) as err:
        print(f"siftlake: {err}", file=sys.stderr)
        return EXIT_FAILED
    if as_json:
        print(json.dumps(counts, sort_keys=True))
    else:
        print(_summary(counts))
    return 0


def _report(lake_uri: str, run_id: str | None, out: str) -> int:
    """``siftlake report``: no Prefect involved, only duckdb over the lake's files."""
    from pathlib import Path

    from flows.report import LakeNotFoundError, UnknownRunError, write_report
    from flows.storage import StorageError, Store

    try:
        lake = Store(lake_uri)
        lake.check_reachable()
        data = write_report(lake, Path(out), run_id)
    except (StorageError, LakeNotFoundError, UnknownRunError, OSError) as err:
        print(f"siftlake: {err}", file=sys.stderr)
        return EXIT_FAILED
    t = data.totals
    print(f"wrote {out}: {t['documents']} documents ({t['duplicates']} duplicates), {t['rejects']} rejects, "
          f"{t['runs']} run(s)")
    return 0


def _index(lake_uri: str, partitions: int | None, lock_wait_s: float) -> int:
    """``siftlake index migrate``: no Prefect involved."""
    from flows.dedup import IncompatibleIndexError
    from flows.dedup.maintenance import migrate_index
    from flows.lake import LakeBusyError
    from flows.storage import StorageError

    try:
        done = migrate_index(lake_uri, partitions, lock_wait_s)
    except (IncompatibleIndexError, LakeBusyError, StorageError, OSError) as err:
        print(f"siftlake: {err}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(done, sort_keys=True))
    return 0


def _server(action: str) -> int:
    if action == "stop":
        stopped = local_api.stop()
        print(f"stopped {len(stopped)} background Prefect API server(s) of {local_api.prefect_home()}")
        return 0
    if action == "start":
        api = local_api.start_or_reuse()
        if api is None:
            print("siftlake: no background server: a Prefect API is configured (PREFECT_API_URL) or "
                  f"{local_api.IDLE_ENV}=0", file=sys.stderr)
            return EXIT_FAILED
        if not api.ready():
            print(f"siftlake: the server did not start; see {api.state_file.with_suffix('.log')}", file=sys.stderr)
            return EXIT_FAILED
    for api in local_api.running():
        print(f"{api.url} (pid {api.pid})")
    return 0


def _summary(counts: dict[str, Any]) -> str:
    lines = [f"units read: {counts['units']} (already in the lake, skipped: {counts['skipped_known']})",
             f"documents written: {counts['documents']} ({counts['duplicates']} flagged as duplicates)",
             f"rejects: {counts['rejects']}"]
    lines += [f"  {reason}: {n}" for reason, n in counts["reject_reasons"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""``siftlake forget``: its arguments and what it prints. Light to import: the work is imported when run."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from flows.forget.lists import ForgetError, ForgetUsageError, Kind

EXIT_FAILED = 1
EXIT_USAGE = 2


def add_parser(commands: Any) -> None:
    """The ``forget`` subcommand, on the CLI's subparsers."""
    forget = commands.add_parser("forget", help="take documents down: remove them from the lake and its index in "
                                 "one commit and keep them blocked (README: Taking content down)")
    forget.add_argument("--lake", default="lake", help="root of the lake, a folder or a URI (default: lake)")
    which = forget.add_mutually_exclusive_group(required=True)
    which.add_argument("--urls", metavar="FILE", help="file of URLs, one a line (http and https match alike)")
    which.add_argument("--domains", metavar="FILE", help="file of domains, one a line (subdomains match too)")
    which.add_argument("--doc-ids", metavar="FILE", help="file of doc_ids, one a line")
    forget.add_argument("--reason", required=True, help="why (a request's reference, say): kept in the log")
    forget.add_argument("--with-copies", action="store_true", help="also remove every other member of the "
                        "removed documents' duplicate clusters, and block their text at any URL")
    forget.add_argument("--dry-run", action="store_true", help="say what would be removed; change nothing")
    forget.add_argument("--lock-wait-s", type=float, default=0.0, help="wait up to this long for a run that "
                        "holds the lake (default: fail at once, as a run does)")
    forget.add_argument("--json", action="store_true", help="print the log as one JSON object on the last line")


def main(args: argparse.Namespace) -> int:
    from flows.forget.job import ForgetOptions, forget
    from flows.lake import LakeBusyError
    from flows.storage import StorageError

    kind: Kind = "urls" if args.urls else "domains" if args.domains else "doc_ids"
    options = ForgetOptions(lake=args.lake, kind=kind, list_file=args.urls or args.domains or args.doc_ids,
                            reason=args.reason, with_copies=args.with_copies, dry_run=args.dry_run,
                            lock_wait_s=args.lock_wait_s)
    try:
        log = forget(options)
    except ForgetUsageError as err:
        print(f"siftlake: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (ForgetError, LakeBusyError, StorageError, OSError, ValueError) as err:
        print(f"siftlake: the takedown failed: {err}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(log, sort_keys=True) if args.json else summary(log))
    return 0


def summary(log: dict[str, Any]) -> str:
    """What a takedown did (or, dry, would do), for people."""
    c = log["counts"]
    verb = "would remove" if log["dry_run"] else "removed"
    if c["matched"] == 0:
        lines = [f"no document in the lake matches the {log['list']['entries']} entries of {log['list']['file']}: "
                 "nothing " + ("would be" if log["dry_run"] else "was") + " removed"]
    else:
        lines = [f"{verb} {c['removed']} document(s): {c['matched']} matched, {c['copies']} copies; "
                 f"{c['files_rewritten']} file(s) rewritten, rows {c['rows_before']} -> {c['rows_after']}"]
        if c["re_kept_clusters"]:
            lines.append(f"{c['re_kept_clusters']} cluster(s) lost their kept document: the next copy by the keep "
                         f"policy is kept now ({c['re_pointed']} other copies point to it)")
    if not log["dry_run"]:
        lines.append(f"the list stays blocked (reject reason taken_down); log: _takedowns/log/{log['forget_id']}.json")
    return "\n".join(lines)

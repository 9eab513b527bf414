"""A takedown from start to commit: the list checked, the lake locked and recovered, the plan, the staged
files, one commit, the log. No Prefect.

The commit is the lake's (``flows.lake.commit``): every file is written under ``_staging/forget-<id>/`` first;
then a COMMIT list of moves is written and performed (the rewritten documents files replace theirs, one
rename each; the index segments that replace the touched ones; the block list and fingerprints; the minus lists
of the known-units store, so the removed units are no longer known: ``flows.lake.units``), the replaced segments
and minus lists, the stale run pages and the staged shards of unfinished runs are deleted, and the log is
published last. A takedown killed before its COMMIT leaves the lake as it was (the next command discards
its staging); one killed after it is finished by the next command (``recover``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flows.dedup import LakeIndex, index_config
from flows.dedup import cache as index_cache
from flows.forget.blocklist import LOG
from flows.forget.lists import ForgetError, ForgetUsageError, Kind, TakedownList, read_list
from flows.forget.plan import Plan, plan_takedown
from flows.forget.stage import stage_blocked, stage_file, stage_fingerprints, stage_index
from flows.lake import (
    DOCUMENTS,
    FORGET_PREFIX,
    INDEX,
    REPORTS,
    RUNS,
    STAGING,
    RunPaths,
    commit,
    fault_point,
    lake_lock,
    recover,
    run_of_file,
    stage_forgotten_units,
    table_files,
    unfinished_runs,
)
from flows.storage import Store

FAULT_POINTS = ("forget:after_documents", "forget:staged")
"""This command's own crash-test points (``SIFTLAKE_FAULT``); the commit's (``commit:before_marker``,
``commit:after_first_move``) apply too."""


@dataclass(frozen=True)
class ForgetOptions:
    """One ``siftlake forget``."""

    lake: str
    kind: Kind
    list_file: str
    reason: str
    with_copies: bool = False
    dry_run: bool = False
    lock_wait_s: float = 0.0
    lock_lease_s: float = 60.0
    cache_dir: str = ""
    scratch_dir: str = ""


def new_forget_id(now: datetime) -> str:
    return f"{FORGET_PREFIX}{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def forget(options: ForgetOptions) -> dict[str, Any]:
    """Take the list's documents down (see the module); return the log (for a dry run: what it would do)."""
    if not options.reason.strip():
        raise ForgetUsageError("--reason must say why the content is taken down (it goes into the log)")
    wanted = read_list(options.kind, options.list_file)
    lake = Store(options.lake)
    lake.check_reachable()
    if not lake.children(RUNS) and not table_files(lake, DOCUMENTS):
        raise ForgetError(f"there is no lake at {lake.uri} (no runs, no documents): check --lake")
    with lake_lock(lake, options.lock_wait_s, options.lock_lease_s) as lease:
        recover(lake)
        now = datetime.now(UTC)
        paths = RunPaths(lake, new_forget_id(now), now.date().isoformat(), options.scratch_dir)
        index_dir, _ = index_cache.local_index(lake, options.cache_dir)
        config = index_config(index_dir)
        index = LakeIndex.open(index_dir, config) if config is not None else None
        plan = plan_takedown(lake, wanted, options.with_copies, index)
        log = _log(paths.run_id, now, options, wanted, plan)
        if options.dry_run:
            return log
        moves = list(plan.files)
        for key in moves:
            stage_file(lake, key, paths, plan)
        fault_point("forget:after_documents")
        rewrite = stage_index(paths, index_dir, config, plan)
        fingerprints, printed = stage_fingerprints(paths, index if options.with_copies else None, plan.removed)
        moves += rewrite.moves + [m for m in (stage_blocked(paths, wanted, plan), fingerprints) if m]
        # The removed documents' units are no longer in the lake: a re-read is a taken_down reject, not a skip.
        units, units_replaced = stage_forgotten_units(paths, sorted(plan.removed))
        moves += units
        runs = unfinished_runs(lake)
        log["index"] = {"segments": [m.removeprefix(f"{INDEX}/") for m in rewrite.moves],
                        "replaced": [r.removeprefix(f"{INDEX}/") for r in rewrite.replaced],
                        "entries_removed": rewrite.removed, "entries_changed": rewrite.changed}
        log["blocked"]["fingerprints"] = printed
        log["unfinished_runs_reset"] = runs
        deletes = list(rewrite.replaced)
        deletes += [f"{REPORTS}/{run}.html" for run in sorted({run_of_file(key) for key in plan.files})]
        deletes += [f"{STAGING}/{run}/shards" for run in runs] + units_replaced
        paths.manifest.write_text(json.dumps(log, indent=2, sort_keys=True))
        fault_point("forget:staged")
        if lease is not None:
            lease.check()
        commit(paths, moves, manifest=f"{LOG}/{paths.run_id}.json", deletes=deletes)
    return log


def _log(forget_id: str, now: datetime, options: ForgetOptions, wanted: TakedownList, plan: Plan) -> dict[str, Any]:
    """The takedown's log: when, why, which list, what it matched and changed; never the removed text."""
    copies = len(plan.removed) - len(plan.matched)
    return {
        "forget_id": forget_id,
        "at": now.isoformat(),
        "reason": options.reason,
        "dry_run": options.dry_run,
        "list": {"kind": wanted.kind, "file": wanted.file, "sha256": wanted.sha256, "entries": wanted.lines},
        "with_copies": options.with_copies,
        "counts": {"matched": len(plan.matched), "removed": len(plan.removed), "copies": copies,
                   "re_kept_clusters": len(plan.re_kept), "re_pointed": len(plan.changes) - len(plan.re_kept),
                   "files_rewritten": len(plan.files), "rows_before": plan.rows_before,
                   "rows_after": plan.rows_before - len(plan.removed)},
        "files_rewritten": plan.files,
        "re_kept": plan.re_kept,
        "blocked": {wanted.kind: len(wanted.keys), "removed_doc_ids": len(plan.removed), "fingerprints": 0},
    }

"""Run reports: whole-run counts per stage and reject reason, and the contents of the run's artifacts."""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from flows import lake as lakefs
from flows.storage import Store

STAGES = ("read", "normalize", "extract", "score", "fingerprint", "stage")


def run_counts(paths: lakefs.RunPaths, dedup: dict[str, int]) -> tuple[dict[str, Any], dict[str, float]]:
    """Whole-run counts from every staged shard's summary, so a resumed run reports all of its shards."""
    counts: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for number in sorted(lakefs.done_shards(paths)):
        summary = json.loads(paths.shard_summary_file(number).read_text())
        counts.update(summary["counts"])
        seconds.update(summary["seconds"])
        reasons.update(summary["reasons"])
    listing = pq.read_table(paths.staging / "run.rejects.parquet")
    stages_and_reasons = zip(listing.column("stage").to_pylist(), listing.column("reason").to_pylist(), strict=True)
    reasons.update(f"{stage}/{reason}" for stage, reason in stages_and_reasons)
    stages = {stage: {"in": counts.get(f"{stage}_in", 0), "out": counts.get(f"{stage}_out", 0)}
              for stage in STAGES[1:-1]}
    result: dict[str, Any] = {
        "files": counts["files"],
        "units": counts["units"] + listing.num_rows,
        "skipped_known": counts["skipped_known"],
        "documents": dedup["documents"],
        "duplicates": dedup["duplicates"],
        "unique": dedup["documents"] - dedup["duplicates"],
        "rejects": sum(reasons.values()),
        "reject_reasons": dict(sorted(reasons.items())),
        "stages": stages,
    }
    return result, dict(seconds)


def count_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the counts table artifact: one per stage, then one per reject reason."""
    counts = manifest["counts"]
    rows = [{"what": "units read", "count": counts["units"]},
            {"what": "skipped (already in the lake)", "count": counts["skipped_known"]}]
    rows += [{"what": f"stage {name}: in / out", "count": f"{io['in']} / {io['out']}"}
             for name, io in counts["stages"].items()]
    rows += [{"what": "documents written", "count": counts["documents"]},
             {"what": "of which duplicates", "count": counts["duplicates"]}]
    rows += [{"what": f"reject {reason}", "count": n} for reason, n in counts["reject_reasons"].items()]
    return rows


def run_markdown(lake: Store, manifest: dict[str, Any]) -> str:
    """Quality-score distribution and largest duplicate clusters of one run, as markdown."""
    run_id = manifest["run_id"]
    table = lakefs.read_run_documents(lake, run_id, ["doc_id", "quality_score", "dup_cluster", "is_duplicate"])
    lines = [f"# siftlake run {run_id}", ""]
    if table is None:
        return "\n".join([*lines, "No new documents in this run."])
    lines += ["## Quality score", "", "| score | documents |", "|---|---|"]
    scores = table.column("quality_score").to_pylist()
    for low in range(10):
        n = sum(1 for s in scores if low / 10 <= s < (low + 1) / 10 or (low == 9 and s == 1.0))
        lines.append(f"| {low / 10:.1f}-{(low + 1) / 10:.1f} | {n} |")
    dups = table.filter(pc.field("is_duplicate"))
    clusters = Counter(dups.column("dup_cluster").to_pylist()).most_common(10)
    lines += ["", "## Largest duplicate clusters", "", "| kept doc_id | duplicates in this run |", "|---|---|"]
    lines += [f"| {cluster} | {n} |" for cluster, n in clusters] or ["| (none) | 0 |"]
    return "\n".join(lines)


def print_progress(done: int, total: int) -> None:
    """A progress line on the terminal (stderr, so ``--json`` output stays clean)."""
    end = "\r" if sys.stderr.isatty() and done < total else "\n"
    print(f"siftlake: {done}/{total} shards processed", end=end, file=sys.stderr, flush=True)

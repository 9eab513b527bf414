"""Commits that readers see whole: staging on the store, the commit, roll-forward after a crash, fault points.

A run works in a local staging folder (the lake's own ``_staging/<run_id>`` on a local lake; a scratch
folder mirrored to it on an object store), then commits: it writes a ``COMMIT`` list of moves and performs
them (one file per table, then the index segments), writes the manifest and removes the staging folder. On
an object store a move is a copy of one object, atomic per object, and a segment's ``meta.json`` goes last.
A run that dies mid-commit is rolled forward by the next run, so a reader sees all of a run or none of it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Collection, Sequence
from pathlib import Path

from flows.lake.layout import COMMIT, FORGET_PREFIX, RUNS, SEGMENT_META, STAGING, RunPaths, as_store
from flows.storage import Store

FAULT_ENV = "SIFTLAKE_FAULT"
"""Crash-test hook: ``SIFTLAKE_FAULT=<point>`` makes the process die at that point (see ``fault_point``)."""
FAULT_ONCE_ENV = "SIFTLAKE_FAULT_ONCE"


def persist(paths: RunPaths, *files: Path) -> None:
    """Mirror finished local staging files to the lake's staging prefix, in order (remote lakes only)."""
    if not paths.lake.remote:
        return
    for path in files:
        paths.lake.upload(path, f"{paths.staging_key}/{path.relative_to(paths.staging).as_posix()}")


def fetch_staged(paths: RunPaths, relative: str) -> Path:
    """The local copy of staged file ``relative``, downloaded from the lake when this machine lacks it."""
    local = paths.staging / relative
    if paths.lake.remote and not local.exists():
        paths.lake.download(f"{paths.staging_key}/{relative}", local)
    return local


def pull_staged(paths: RunPaths) -> None:
    """Bring the shards other machines (or an earlier attempt) staged on the store into ``staging``.

    A shard's summary is mirrored last, so only shards whose summary is there are taken; locally the
    shard's Parquet file comes last, as it marks the shard done (``done_shards``).
    """
    if not paths.lake.remote:
        return
    prefix = f"{paths.staging_key}/shards"
    names = set(paths.lake.children(prefix))
    for summary in sorted(n for n in names if n.endswith(".json")):
        stem = summary[: -len(".json")]
        for name in (f"{stem}.rejects.parquet", summary, f"{stem}.parquet"):
            if name in names and not (paths.shards / name).exists():
                paths.lake.download(f"{prefix}/{name}", paths.shards / name)


def done_shards(paths: RunPaths) -> set[int]:
    """Numbers of the shards staged whole in ``staging``: a shard is done once its Parquet file has been
    renamed into place, which happens after its rejects and summary are written."""
    if not paths.shards.exists():
        return set()
    return {int(p.name[6:12]) for p in paths.shards.glob("shard-*[0-9].parquet")}


def fault_point(name: str) -> None:
    """Die here, as ``kill -9`` would, when ``SIFTLAKE_FAULT`` names this point; a no-op otherwise.

    Points: ``dedup:link`` (a partition task of dedup, before it reads anything), ``write:after_documents``
    (the documents file is assembled in staging, the rejects file not yet), ``commit:before_marker`` (the run's
    files are written in staging, no COMMIT yet), ``commit:after_first_move`` (COMMIT written, one of its
    renames done), ``units:merged`` and ``units:published`` (a merge of the known-units store after the commit:
    its new file written, then its manifest replaced; ``flows.lake.units_update``); ``siftlake forget`` adds its
    own (``flows.forget``). Used by tests/test_crash.py, tests/system/test_dask.py, tests/system/test_known_units.py,
    tests/lake/test_units.py and tests/forget. With ``SIFTLAKE_FAULT_ONCE=<path>`` only the first process to
    get there dies (it creates the file): a worker killed once, whose task a cluster then runs elsewhere.
    """
    if os.environ.get(FAULT_ENV) != name:
        return
    once = os.environ.get(FAULT_ONCE_ENV)
    if once:
        try:
            Path(once).touch(exist_ok=False)
        except FileExistsError:
            return
    os._exit(137)


def commit(paths: RunPaths, moves: Sequence[str], manifest: str = "", deletes: Sequence[str] = (),
           mirrored: Collection[str] = ()) -> None:
    """Make a staged run visible: record the moves, perform them, delete ``deletes`` (keys or prefixes of
    the lake that the moves make obsolete), publish the manifest (to ``manifest``, relative to the lake;
    default ``_runs/<run_id>.json``). All of it is rolled forward after a crash.

    On a local lake a move is a rename (an index segment moves as one folder). On an object store
    the run's files are first put under its staging prefix, then each is copied to its place (one
    atomic object each; a segment's ``meta.json`` last, so readers see whole segments only). ``mirrored``: moves
    (files or folders) that the tasks which wrote them, in this attempt, put under the staging prefix already
    (``persist``, after their last write): not uploaded again.
    """
    fault_point("commit:before_marker")
    store = paths.lake
    if store.remote:
        moves = _upload_for_commit(paths, moves, set(mirrored))
    plan = {"moves": list(moves), "manifest": manifest or f"{RUNS}/{paths.run_id}.json", "deletes": list(deletes)}
    store.write_bytes(f"{paths.staging_key}/{COMMIT}", json.dumps(plan).encode())
    _roll_forward(store, paths.run_id)
    if store.remote:
        shutil.rmtree(paths.staging, ignore_errors=True)


def _upload_for_commit(paths: RunPaths, moves: Sequence[str], mirrored: set[str]) -> list[str]:
    """Put the run's local files under its staging prefix (but those of ``mirrored`` moves); return the object
    moves, folders expanded. A file this machine lacks is one a worker mirrored there already."""
    objects: list[str] = []
    for relative in moves:
        local = paths.staging / relative
        if not local.exists() and paths.lake.exists(f"{paths.staging_key}/{relative}"):
            objects.append(relative)  # a file a worker on another machine staged (and mirrored) itself
            continue
        files = sorted(local.rglob("*"), key=lambda p: (p.name == SEGMENT_META, p.as_posix())) if local.is_dir() \
            else [local]
        for path in files:
            if path.is_file():
                objects.append(path.relative_to(paths.staging).as_posix())
                if relative not in mirrored:
                    persist(paths, path)
    persist(paths, paths.manifest)
    return objects


def _roll_forward(store: Store, run_id: str) -> None:
    staging = f"{STAGING}/{run_id}"
    plan = store.read_json(f"{staging}/{COMMIT}")
    for relative in plan["moves"]:
        if store.exists(f"{staging}/{relative}"):
            store.move(f"{staging}/{relative}", relative)
            fault_point("commit:after_first_move")
    for key in plan.get("deletes", []):
        store.delete(key)
    if store.exists(f"{staging}/manifest.json"):
        store.move(f"{staging}/manifest.json", plan["manifest"])
    store.delete(staging)


def recover(lake: Store | str | os.PathLike[str]) -> list[str]:
    """Finish the commits that a crash interrupted; return the ids of the runs (and takedowns) rolled forward.

    A takedown (``forget-<id>``) that stopped before its COMMIT is discarded: nothing of it was visible,
    and it is not resumed (its command is run again). Call it under the lake's lock.
    """
    store = as_store(lake)
    finished = []
    for run_id in store.children(STAGING):
        if store.exists(f"{STAGING}/{run_id}/{COMMIT}"):
            _roll_forward(store, run_id)
            finished.append(run_id)
        elif run_id.startswith(FORGET_PREFIX):
            store.delete(f"{STAGING}/{run_id}")
    return finished


def unfinished_runs(lake: Store | str | os.PathLike[str]) -> list[str]:
    """Ids of the runs that stopped before their commit (resumable)."""
    store = as_store(lake)
    return [run_id for run_id in store.children(STAGING)
            if not run_id.startswith((".", FORGET_PREFIX)) and not store.exists(f"{STAGING}/{run_id}/{COMMIT}")]


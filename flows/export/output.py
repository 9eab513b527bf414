"""OUT: a folder or a bucket prefix that holds one export, its manifest written last::

    OUT/data/shard-00000.<format>   the shards (their own folder, so that ``pd.read_parquet(OUT/data)``
    OUT/data/shard-00001.<format>   and ``load_dataset(..., data_dir=OUT/data)`` find nothing else)
    OUT/manifest.json               written last: what the export holds, with each shard's sha256

Shards are written under a temporary name (``data/.shard-NNNNN.<format>.partial``) and renamed into
place when closed, in a local OUT; for a bucket OUT they are written in a local scratch folder and put in
one upload each (an object appears whole). ``manifest.json`` goes last: an export without one is
incomplete. OUT that already holds an export is refused unless ``replace``; OUT that holds anything
else is always refused (replacing never deletes what the export did not write).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from flows.export.options import FORMATS, MANIFEST, ExportUsageError
from flows.storage import Store

DATA = "data"
_EXPORT_FILE = re.compile(r"(?:manifest\.json|data/\.?shard-\d+\.(?:" + "|".join(re.escape(f) for f in FORMATS)
                          + r")(?:\.partial)?)")


def is_export_file(key: str) -> bool:
    return _EXPORT_FILE.fullmatch(key) is not None


def prepare(out: Store, replace: bool) -> None:
    """Check that OUT can take the export; with ``replace``, remove the export it holds (manifest first)."""
    if not out.remote and out.local().exists() and not out.local().is_dir():
        raise ExportUsageError(f"OUT {out.url()} is a file, not a folder")
    keys = out.files()
    if not keys:
        return
    foreign = [key for key in keys if not is_export_file(key)]
    if foreign:
        raise ExportUsageError(f"OUT {out.url()} holds files that are not an export ({', '.join(foreign[:5])}"
                               f"{'...' if len(foreign) > 5 else ''}): choose an empty folder")
    if not replace:
        state = "an export" if MANIFEST in keys else "an incomplete export (shards without a manifest)"
        raise ExportUsageError(f"OUT {out.url()} already holds {state}: pass --replace to replace it")
    for key in sorted(keys, key=lambda k: k != MANIFEST):  # the manifest first: the old export stops looking whole
        out.delete(key)


class Target:
    """Where shards go: straight into a local OUT, or through ``workdir`` to a bucket."""

    def __init__(self, out: Store, scratch: Path) -> None:
        self.out = out
        self.workdir = scratch / DATA if out.remote else out.local(DATA)
        self.workdir.mkdir(parents=True, exist_ok=True)

    def publish(self, path: Path, name: str) -> None:
        if self.out.remote:
            self.out.upload(path, self.key(name))
            path.unlink()
        else:
            os.replace(path, self.workdir / name)

    @staticmethod
    def key(name: str) -> str:
        """A shard's path relative to OUT."""
        return f"{DATA}/{name}"

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        data = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
        self.out.write_bytes(MANIFEST, data)

"""Rebuild this folder: a format-2 lake index written by siftlake before the partitioned index (format 3), two
runs and a compaction of them plus a third run, and the answers that code gave, for tests/dedup/index/test_migrate.py.
Run with the code of commit 16f2021 (the last with format 2):

    mkdir /tmp/old16f && git archive 16f2021 flows tests | tar -x -C /tmp/old16f
    cd /tmp/old16f && PYTHONPATH=/tmp/old16f python /path/to/tests/data/index_format2/make_fixture.py \\
        /path/to/tests/data/index_format2
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from flows.dedup import LakeIndex, compact, publish_segment, resolve
from flows.dedup.index import FORMAT
from tests.dedup.helpers import CONFIG, article, batch_of, edit

_LONG = article(40, 500)
RUNS = {
    "run-1": (["a1", "a2", "b1", "c1"], [article(1), edit(article(1), 5), article(2), article(3)],
              [0.9, 0.5, 0.5, 0.5]),
    "run-2": (["d1", "d2", "e1", "x1"], [_LONG, edit(_LONG, 6), article(5, 200), " ".join(article(3).split()[:150])],
              [0.4, 0.8, 0.5, 0.5]),
    "run-3": (["f1", "f2", "g1"], [article(6), article(6), edit(article(2), 11)], [0.5, 0.5, 0.5]),
}
PROBE = {
    "p-near-a1": edit(article(1), 9),
    "p-same-b1": article(2),
    "p-near-d": edit(_LONG, 7),
    "p-excerpt-d": " ".join(_LONG.split()[:200]),
    "p-excerpt-c1": " ".join(article(3).split()[:120]),
    "p-same-f": article(6),
    "p-new": article(9),
}


def main(folder: Path) -> None:
    assert FORMAT == 2, "run this with the code of 16f2021"
    index_dir = folder / "_index"
    shutil.rmtree(index_dir, ignore_errors=True)
    for number, (name, (ids, texts, quality)) in enumerate(RUNS.items()):
        batch = batch_of(ids, texts, quality)
        index = LakeIndex.open(index_dir, CONFIG)
        staging = folder / "_staging" / name
        index.write_segment(staging, batch, resolve(batch, index, CONFIG))
        publish_segment(index_dir, staging)
        if number == 1:
            compact(index_dir, CONFIG, "compact-1")  # a legacy compaction: its meta names what it replaced
    shutil.rmtree(folder / "_staging")
    index = LakeIndex.open(index_dir, CONFIG)
    probe = batch_of(list(PROBE), list(PROBE.values()))
    answers = resolve(probe, index, CONFIG)
    near, containing = index.query(probe.signatures, probe.sizes)
    entries = [doc for ids, _, _ in RUNS.values() for doc in ids]
    known = index.decisions_of(entries)
    expected = {
        "index_params": CONFIG.index_params(),
        "probe": {doc: [answers.dup_cluster[i], bool(answers.is_duplicate[i]), float(answers.dup_similarity[i]),
                        answers.dup_kind[i], float(answers.dup_containment[i])]
                  for i, doc in enumerate(probe.doc_ids)},
        "near": [[int(q), c, float(s)] for q, c, s in zip(near.query_rows, near.dup_cluster, near.similarity,
                                                          strict=True)],
        "containing": [[int(q), c, float(s)] for q, c, s in zip(containing.query_rows, containing.dup_cluster,
                                                               containing.similarity, strict=True)],
        "entries": {doc: [known.dup_cluster[i], bool(known.is_duplicate[i]), float(known.dup_similarity[i]),
                          known.dup_kind[i], None if np.isnan(known.dup_containment[i]) else
                          float(known.dup_containment[i])]
                    for i, doc in enumerate(entries)},
    }
    (folder / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

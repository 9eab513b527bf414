"""Rebuild this folder: a format-1 lake index written by siftlake before containment dedup, and the
answers that code gave, for tests/test_dedup_index.py. Run with the code of commit 513e6c5:

    git archive 513e6c5 flows tests/dedup_helpers.py | tar -x -C /tmp/old513
    cd /tmp/old513 && PYTHONPATH=/tmp/old513 python /path/to/tests/data/index_format1/make_fixture.py \\
        /path/to/tests/data/index_format1
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from flows.dedup import LakeIndex, publish_segment, resolve
from flows.dedup.index import FORMAT
from tests.dedup.helpers import CONFIG, article, batch_of, edit

RUNS = {
    "run-1": (["a1", "a2", "b1", "c1"], [article(1), edit(article(1), 5), article(2), article(3)],
              [0.9, 0.5, 0.5, 0.5]),
    "run-2": (["d1", "d2", "e1"], [article(4, 500), edit(article(4, 500), 6), article(5, 200)], [0.4, 0.8, 0.5]),
}
PROBE = {
    "p-near-a1": edit(article(1), 9),
    "p-near-a2": edit(article(1), 5) + " update",  # a copy of the old duplicate a2: cluster a1
    "p-same-b1": article(2),
    "p-near-d2": edit(article(4, 500), 7),
    "p-excerpt-c1": " ".join(article(3).split()[:150]),  # kept: no containment then
    "p-new": article(9),
}


def main(folder: Path) -> None:
    assert FORMAT == 1, "run this with the code of 513e6c5"
    index_dir = folder / "_index"
    shutil.rmtree(index_dir, ignore_errors=True)
    for name, (ids, texts, quality) in RUNS.items():
        batch = batch_of(ids, texts, quality)
        index = LakeIndex.open(index_dir, CONFIG)
        staging = folder / "_staging" / name
        index.write_segment(staging, batch, resolve(batch, index, CONFIG))
        publish_segment(index_dir, staging)
    shutil.rmtree(folder / "_staging")
    index = LakeIndex.open(index_dir, CONFIG)
    probe = batch_of(list(PROBE), list(PROBE.values()))
    answers = resolve(probe, index, CONFIG)
    entries = [doc for ids, _, _ in RUNS.values() for doc in ids]
    known = index.decisions_of(entries)
    expected = {
        "index_params": CONFIG.index_params(),
        "probe": {doc: [answers.dup_cluster[i], bool(answers.is_duplicate[i]), float(answers.dup_similarity[i])]
                  for i, doc in enumerate(probe.doc_ids)},
        "entries": {doc: [known.dup_cluster[i], bool(known.is_duplicate[i]), float(known.dup_similarity[i])]
                    for i, doc in enumerate(entries)},
    }
    (folder / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

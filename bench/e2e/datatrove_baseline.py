"""Baseline (b): datatrove 0.10 doing siftlake's work, run in datatrove's own virtual environment.

    bench/out/datatrove-venv/bin/python bench/e2e/datatrove_baseline.py CORPUS_DIR WORK_DIR WORKERS

FineWeb-style, on the local executor with WORKERS processes:
1. JsonlReader (the ``html`` field) -> Trafilatura(favour_precision=True) -> GopherRepetitionFilter ->
   GopherQualityFilter -> C4QualityFilter -> FineWebQualityFilter -> JsonlWriter (intermediate);
2. MinhashDedupSignature; 3. MinhashDedupBuckets; 4. MinhashDedupCluster;
5. MinhashDedupFilter -> ParquetWriter (the final output).
Prints one JSON line: documents in, documents written.
Imports nothing from siftlake or bench (datatrove pins trafilatura 1.x; siftlake needs 2.x), so it runs by
its path, not as a module of the bench package.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
)
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter


def main() -> None:
    corpus, work, workers = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    shutil.rmtree(work, ignore_errors=True)
    # datatrove deals files to tasks round-robin; one task per worker keeps its per-task start-up cost minimal.
    tasks = min(workers, len(list(corpus.glob("*.jsonl"))))
    config = MinhashConfig()  # 5-gram shingles, 14 buckets x 8 hashes: datatrove's defaults
    logs, filtered, sigs = work / "logs", str(work / "filtered"), str(work / "signatures")
    buckets, remove, out = str(work / "buckets"), str(work / "remove_ids"), str(work / "output")

    def stage(name: str, pipeline: list, tasks: int, depends: LocalPipelineExecutor | None) -> LocalPipelineExecutor:
        return LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(workers, tasks),
                                     logging_dir=str(logs / name), depends=depends)

    extract = stage("extract", [
        JsonlReader(str(corpus), text_key="html", id_key="id", glob_pattern="*.jsonl"),
        Trafilatura(favour_precision=True, timeout=10.0),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
        JsonlWriter(filtered),
    ], tasks, None)
    signature = stage("signature", [JsonlReader(filtered), MinhashDedupSignature(sigs, config=config)], tasks, extract)
    bucket = stage("buckets", [MinhashDedupBuckets(sigs, buckets, config=config)], config.num_buckets, signature)
    cluster = stage("cluster", [MinhashDedupCluster(buckets, remove, config=config)], 1, bucket)
    final = stage("filter", [JsonlReader(filtered), MinhashDedupFilter(remove), ParquetWriter(out)], tasks, cluster)
    final.run()
    written = sum(_rows(p) for p in Path(out).rglob("*.parquet"))
    print(json.dumps({"documents": _lines(corpus), "written": written}))


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _lines(corpus: Path) -> int:
    return sum(sum(1 for _ in open(p, "rb")) for p in corpus.glob("*.jsonl"))


if __name__ == "__main__":
    main()

"""One shard through its stages: a shard is read in chunks, each the size the pipelining asks for."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from flows.read import ReadConfig, discover, plan_shards
from flows.shard import read_chunks
from tests.read.helpers import read_all


def test_a_file_larger_than_a_shard_is_read_in_chunks_of_about_the_shard_size(tmp_path: Path) -> None:
    lines = [json.dumps({"text": f"Document {i}. " + "word " * 200}) for i in range(40)]
    lines.insert(7, "not json")
    (tmp_path / "dump.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    config = ReadConfig(shard_bytes=5_000)
    found = discover(str(tmp_path))
    assert len(plan_shards(found.files, config)) == 1  # a compressed file cannot be cut: one shard
    chunks = list(read_chunks(0, found.files, config, None))
    assert len(chunks) > 1
    assert all(sum(len(d.text) for d in c.docs) < config.shard_bytes + 1_100 for c in chunks)
    assert [d.source_uri for c in chunks for d in c.docs] == [d.source_uri for d in read_all(tmp_path)[0]]
    assert sum(len(c.rejects) for c in chunks) == 1
    assert sum(c.counts["units"] for c in chunks) == 41
    assert [c.counts["files"] for c in chunks] == [0] * (len(chunks) - 1) + [1]

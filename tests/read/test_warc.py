"""WARC inputs: response records are units with their URL and offset; a damaged file keeps what came before."""

from __future__ import annotations

import gzip
from pathlib import Path

from tests.read.helpers import read_all


def test_warc_response_records_are_units_with_url_and_offset(corpora: Path) -> None:
    docs, rejects = read_all(corpora / "warc_samples_dolma" / "sample-0000.warc.gz")
    assert rejects == []
    assert len(docs) >= 10
    first = docs[0]
    assert first.source_uri == "sample-0000.warc.gz#865"
    assert first.url == "https://www.semanticscholar.org/research/research-team"
    assert first.kind == "html" and "<html" in first.text.lower()


def test_truncated_warc_keeps_the_records_before_the_damage(tmp_path: Path, corpora: Path) -> None:
    raw = gzip.decompress((corpora / "warc_samples_dolma" / "sample-0000.warc.gz").read_bytes())
    (tmp_path / "cut.warc").write_bytes(raw[: len(raw) // 2])
    docs, rejects = read_all(tmp_path)
    assert len(docs) >= 3
    assert len(rejects) <= 2 and all(r.reason in {"warc_truncated", "empty"} for r in rejects)
    assert any(r.reason == "warc_truncated" for r in rejects)

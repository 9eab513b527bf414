"""Hostile input (issue 8): every unit becomes a document or a reject with a precise reason; the run completes.

The corpus is built by ``tests/support/hostile_corpus.py`` in a temporary folder. The fast test runs the pure
stages; the flow test runs the Prefect flow into a lake, reads it back with duckdb, and checks the lake report of
that run (issue 24: every reject reason with examples), so that the hostile corpus is ingested by the flow once.
"""

from __future__ import annotations

import builtins
import errno
import html
import re
import shutil
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from flows import cli, shard
from flows.config import IngestConfig
from flows.dedup import DedupConfig
from flows.document import Document, Reject
from flows.extract import ExtractConfig, extract_batch
from flows.quality import QualityConfig
from flows.read import ReadConfig, discover, read_shard
from tests.report import browser
from tests.report.markup import audit
from tests.support import hostile_corpus as hc

LAKE_ENTRIES = {"documents", "rejects", "_runs", "_index", "_units", "_lock", "_reports"}
LOW_QUALITY = 0.3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> hc.Corpus:
    return hc.build(tmp_path_factory.mktemp("hostile"))


def outcomes(docs: dict[str, dict[str, Any]], rejects: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    """source_uri -> ("document", row) or ("reject", stage, reason, detail); a unit seen twice fails the test."""
    seen: dict[str, Any] = {}
    for uri, row in docs.items():
        seen[uri] = ("document", row)
    for uri, stage, reason, detail in rejects:
        assert uri not in seen, f"{uri} is in the lake twice: {seen[uri]} and {stage}/{reason}"
        assert len(detail) > 10, f"{uri}: the reject needs a sentence for people, got {detail!r}"
        seen[uri] = ("reject", stage, reason, detail)
    return seen


def check_accounting(corpus: hc.Corpus, seen: dict[str, Any]) -> None:
    """Every unit of the corpus is where it must be, and nothing else is."""
    assert set(seen) == set(corpus.units), (
        f"missing: {sorted(set(corpus.units) - set(seen))}, unexpected: {sorted(set(seen) - set(corpus.units))}")
    wrong = {}
    for uri, expect in corpus.units.items():
        got = seen[uri]
        if expect.kind == "reject":
            if got[:3] != ("reject", expect.stage, expect.reason):
                wrong[uri] = (expect.what, f"{expect.stage}/{expect.reason}", got)
            continue
        if got[0] != "document":
            wrong[uri] = (expect.what, "document", got)
            continue
        text = got[1]["text"]
        if expect.exact is not None and text != expect.exact:
            wrong[uri] = (expect.what, expect.exact, text[:500])
        elif not all(part in text for part in expect.texts):
            wrong[uri] = (expect.what, expect.texts, text[:500])
    assert not wrong, wrong


# What no kept text may hold: NUL and other controls, C1 controls (unrepaired mojibake), escape remnants.
_UNCLEAN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]|\\[[0-9;]*m|Ã|â€")


def check_clean(seen: dict[str, Any]) -> None:
    unclean = {uri: got[1]["text"][:200] for uri, got in seen.items()
               if got[0] == "document" and _UNCLEAN.search(got[1]["text"])}
    assert not unclean, unclean


def run_stages(corpus: hc.Corpus) -> tuple[list[Document], list[Reject]]:
    """The per-shard stages of the pipeline on the whole corpus, as one shard, without Prefect."""
    config = IngestConfig.model_validate({"source": str(corpus.source), **corpus.config()})
    found = discover(str(corpus.source))
    batch = shard.read_stage(0, found.files, config.read, None)
    batch = shard.normalize_stage(batch)
    batch = shard.extract_stage(batch, config.extract)
    batch = shard.score_stage(batch, QualityConfig())
    batch = shard.fingerprint_stage(batch, DedupConfig())
    return batch.docs, batch.rejects + found.rejects


def test_every_hostile_unit_becomes_a_document_or_a_precise_reject(corpus: hc.Corpus) -> None:
    docs, rejects = run_stages(corpus)
    seen = outcomes({d.source_uri: {"text": d.text, "quality_score": d.quality_score} for d in docs},
                    [(r.source_uri, r.stage, r.reason, r.detail) for r in rejects])
    check_accounting(corpus, seen)
    check_clean(seen)
    assert seen["html/link_farm.html"][1]["quality_score"] < LOW_QUALITY
    assert not any(hc.SECRET in d.text for d in docs)


def test_a_file_that_cannot_be_read_is_a_reject_with_the_os_reason(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run as root, where chmod 000 does not stop a read: make the reads fail the ways a crawl sees."""
    for name in ("vanished.txt", "became_a_dir.txt", "denied.txt", "fine.txt"):
        (tmp_path / name).write_text("Some perfectly good words in a file.")
    files = discover(str(tmp_path)).files
    (tmp_path / "vanished.txt").unlink()  # deleted between listing and reading (a rotated dump)
    (tmp_path / "became_a_dir.txt").unlink()
    (tmp_path / "became_a_dir.txt").mkdir()
    real_open = builtins.open

    def deny(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith("denied.txt"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    docs, rejects = read_shard(files, ReadConfig())
    assert [d.source_uri for d in docs] == ["fine.txt"]
    reasons = {r.source_uri: (r.reason, r.detail) for r in rejects}
    assert reasons == {
        "vanished.txt": ("unreadable", "cannot read the file: No such file or directory"),
        "became_a_dir.txt": ("unreadable", "cannot read the file: Is a directory"),
        "denied.txt": ("unreadable", "cannot read the file: Permission denied"),
    }


def test_limits_are_configuration_with_their_own_reasons(tmp_path: Path) -> None:
    hc.write_gzip_bomb(tmp_path / "bomb.jsonl.gz", inflated=256 * 1024 * 1024)
    (tmp_path / "page.txt").write_text("word " * 1000)
    small = ReadConfig(max_unit_bytes=1000, max_inflated_bytes=10_000)
    _, rejects = read_shard(discover(str(tmp_path)).files, small)
    assert {r.source_uri: r.reason for r in rejects} == {"bomb.jsonl.gz": "gzip_too_large",
                                                          "page.txt": "unit_too_large"}
    docs, rejects = read_shard(discover(str(tmp_path / "page.txt")).files, ReadConfig())
    assert [d.source_uri for d in docs] == ["page.txt"] and rejects == []


@pytest.mark.alone
def test_a_page_that_hangs_the_extractor_becomes_an_extract_timeout(tmp_path: Path) -> None:
    # Tens of thousands of sibling tables: trafilatura works on it for well over a second.
    slow = "<html><body>" + "<table><tr><td><p>cell text here</p></td></tr></table>" * 60_000 + "</body></html>"
    docs = [Document("slow", "slow.html", slow, "html"),
            Document("ok", "ok.html", "<html><body><article>" + "<p>A fine paragraph of text.</p>" * 20
                     + "</article></body></html>", "html")]
    kept, rejects = extract_batch(docs, ExtractConfig(timeout_s=0.5))
    assert [(r.source_uri, r.stage, r.reason) for r in rejects] == [("slow.html", "extract", "extract_timeout")]
    assert [d.source_uri for d in kept] == ["ok.html"]


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_the_flow_ingests_the_hostile_corpus_completely_and_touches_nothing_else(corpus: hc.Corpus,
                                                                                 tmp_path: Path) -> None:
    from flows.ingest import ingest

    before = hc.snapshot(corpus.source), hc.snapshot(corpus.outside)
    siblings = set(corpus.source.parent.iterdir())
    lake = tmp_path / "lake"
    config = IngestConfig.model_validate({"source": str(corpus.source), "lake": str(lake),
                                          "runner": {"kind": "thread", "workers": 2}, **corpus.config()})
    started = time.monotonic()
    counts = ingest(config)
    elapsed = time.monotonic() - started
    assert elapsed < 300, f"the hostile corpus took {elapsed:.0f} s"

    docs = duckdb.sql(f"select source_uri, text, quality_score from read_parquet('{lake}/documents/**/*.parquet', "
                      "hive_partitioning=true)").fetchall()
    bad = duckdb.sql(f"select source_uri, stage, reason, detail from read_parquet('{lake}/rejects/**/*.parquet', "
                     "hive_partitioning=true)").fetchall()
    seen = outcomes({uri: {"text": text, "quality_score": q} for uri, text, q in docs}, bad)
    check_accounting(corpus, seen)
    check_clean(seen)
    assert counts["units"] == len(docs) + len(bad) == len(corpus.units)
    assert counts["documents"] == len(docs) and counts["rejects"] == len(bad)

    # Nothing written outside the lake, nothing read outside SOURCE.
    assert (hc.snapshot(corpus.source), hc.snapshot(corpus.outside)) == before
    assert set(corpus.source.parent.iterdir()) == siblings
    assert {p.name for p in lake.iterdir()} <= LAKE_ENTRIES | {"_staging"}
    assert not (lake / "_staging").exists() or not any((lake / "_staging").iterdir()), "a finished run left staging"
    assert not any(hc.SECRET in text for _, text, _ in docs)

    # The lake report of this run lists every reject reason, each with an example, and holds no markup from the
    # data (it was tests/report/test_report.py's test_the_hostile_corpus_report_lists_every_reject_reason_with_examples,
    # which ingested the same corpus with the same configuration a second time).
    report_lists_every_reject_reason_with_examples(corpus, lake, tmp_path)

    # A second run over the same hostile source adds nothing.
    again = ingest(config)
    assert again["documents"] == 0 and again["rejects"] == 0
    shutil.rmtree(lake)


def report_lists_every_reject_reason_with_examples(corpus: hc.Corpus, lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "hostile.html"
    assert cli.main(["report", "--lake", str(lake), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert audit(text) == [] and "<script" not in text.lower()
    expected = {(e.stage, e.reason) for e in corpus.units.values() if e.kind == "reject"}
    rows = pd.read_parquet(lake / "rejects")
    for stage, reason in sorted(expected):
        assert f"<span class=mono>{html.escape(reason)}</span>" in text, reason
        example = rows[(rows["stage"] == stage) & (rows["reason"] == reason)]["source_uri"]
        assert any(html.escape(uri) in text for uri in example), f"no example of {stage}/{reason}"
    if browser.available():
        seen = browser.visit(out, tmp_path / "hostile.png")
        assert seen.dialogs == [] and seen.scripts == 0 and seen.page_errors == []

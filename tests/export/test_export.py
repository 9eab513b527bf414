"""``siftlake export``: a lake built by the real ingest, exported and read back by pandas, duckdb and datasets."""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows import cli
from flows.config import IngestConfig
from flows.export import ExportOptions, ExportUsageError, parse_size
from flows.export.job import export
from tests.support.servers import S3Server

EN = str.split("the river runs past the old mill and the children walk along the bank every morning "
               "before school while their parents talk about the weather the harvest and the price of bread "
               "in the market town")
DE = str.split("der fluss fließt an der alten mühle vorbei und die kinder gehen jeden morgen vor der "
               "schule am ufer entlang während ihre eltern über das wetter die ernte und den preis des brotes "
               "in der stadt sprechen")
TARGET = 30_000
PREDICATE = "quality_score >= 0.6 AND lang IN ('en','de')"  # leaves out a fifth of the English


def _text(rng: random.Random, words: list[str]) -> str:
    paragraphs = []
    for _ in range(rng.randint(2, 6)):
        sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 16))).capitalize() + "."
                     for _ in range(rng.randint(3, 6))]
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def write_corpus(folder: Path, n: int = 300) -> Path:
    """``n`` documents, a third German, and an exact copy at another url of every tenth."""
    rng = random.Random(7)
    lines = []
    for i in range(n):
        lang = "de" if i % 3 == 0 else "en"
        lines.append({"id": f"doc-{i}", "url": f"https://example.org/{lang}/{i}", "title": f"Page {i}",
                      "text": _text(rng, DE if lang == "de" else EN)})
    lines += [{**lines[i], "id": f"copy-{i}", "url": f"https://mirror.example.net/{i}"} for i in range(0, n, 10)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "crawl.jsonl").write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    return folder


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Path:
    from flows.ingest import ingest

    root = tmp_path_factory.mktemp("export")
    config = IngestConfig.model_validate({"source": str(write_corpus(root / "corpus")), "lake": str(root / "lake")})
    counts = ingest(config)
    assert counts["documents"] == 330 and counts["duplicates"] >= 30
    return root / "lake"


def run(*args: str) -> int:
    return cli.main(["export", *args])


def lake_query(lake: Path, select: str, where: str = "true", tail: str = "") -> list[tuple[Any, ...]]:
    return duckdb.sql(f"select {select} from read_parquet('{lake}/documents/**/*.parquet', hive_partitioning=true) "
                      f"where not is_duplicate and ({where}) {tail}").fetchall()


def manifest_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())


def shard_paths(out: Path) -> list[Path]:
    return sorted((out / "data").glob("shard-*"))


def test_rows_match_duckdb_shards_are_sized_and_the_manifest_tells_the_truth(lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("--lake", str(lake), str(out), "--where", PREDICATE, "--shard-bytes", "30KB") == 0
    (expected,) = lake_query(lake, "count(*)", PREDICATE)
    assert duckdb.sql(f"select count(*) from read_parquet('{out}/data/*.parquet')").fetchall() == [expected]
    assert 0 < expected[0] < lake_query(lake, "count(*)")[0][0]
    manifest = manifest_of(out)
    shards = shard_paths(out)
    assert [f"data/{s.name}" for s in shards] == [s["path"] for s in manifest["shards"]] and len(shards) >= 4
    for path, entry in zip(shards, manifest["shards"], strict=True):
        assert entry["bytes"] == path.stat().st_size
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["rows"] == duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall()[0][0]
    assert all(abs(s["bytes"] - TARGET) <= TARGET * 0.1 for s in manifest["shards"][:-1]), manifest["shards"]
    per_lang = lake_query(lake, "lang, count(*), sum(length(text)), sum(len(regexp_extract_all(text, '\\S+')))",
                          PREDICATE, "group by lang")
    assert {lang: [n, chars, words] for lang, n, chars, words in per_lang} == {
        lang: [e["documents"], e["characters"], e["words"]] for lang, e in manifest["languages"].items()}
    assert manifest["totals"]["documents"] == expected[0] == sum(r["documents"] for r in manifest["runs"])
    assert manifest["where"] == PREDICATE and manifest["columns"] == ["id", "text", "url", "title", "lang",
                                                                       "quality_score"]
    assert [r["source"] for r in manifest["runs"]] == [str(lake.parent / "corpus")]


def test_no_duplicates_and_no_signals_by_default_and_columns_picks_others(lake: Path, tmp_path: Path) -> None:
    assert run("--lake", str(lake), str(tmp_path / "a"), "--shard-bytes", "1MB") == 0
    frame = pd.read_parquet(tmp_path / "a" / "data")
    assert list(frame.columns) == ["id", "text", "url", "title", "lang", "quality_score"]
    assert set(frame["id"]) == {row[0] for row in lake_query(lake, "doc_id")}
    assert len(frame) == 300 and frame["text"].is_unique  # one of each pair of copies: the one the lake kept
    assert run("--lake", str(lake), str(tmp_path / "b"), "--columns", "id,q_stop_word_frac",
               "--columns", "ingest_date") == 0
    assert list(pd.read_parquet(tmp_path / "b" / "data").columns) == ["id", "q_stop_word_frac", "ingest_date"]


def test_exports_are_deterministic_and_the_shuffle_reorders_the_same_rows(lake: Path, tmp_path: Path) -> None:
    for name, extra in (("a", ()), ("b", ()), ("s1", ("--shuffle-seed", "3")), ("s2", ("--shuffle-seed", "3")),
                        ("s3", ("--shuffle-seed", "4"))):
        assert run("--lake", str(lake), str(tmp_path / name), "--format", "jsonl.gz", "--shard-bytes", "40KB",
                   *extra) == 0
    def contents(name: str) -> list[bytes]:
        return [p.read_bytes() for p in shard_paths(tmp_path / name)]
    def ids(name: str) -> list[str]:
        return list(pd.concat(pd.read_json(p, lines=True) for p in shard_paths(tmp_path / name))["id"])
    assert contents("a") == contents("b") and contents("s1") == contents("s2")
    assert ids("a") != ids("s1") != ids("s3") and sorted(ids("a")) == sorted(ids("s1")) == sorted(ids("s3"))
    assert manifest_of(tmp_path / "s1")["totals"] == manifest_of(tmp_path / "a")["totals"]


def test_the_shuffle_order_does_not_depend_on_the_bucket_size(lake: Path, tmp_path: Path) -> None:
    small, large = (export(ExportOptions(lake=str(lake), out=str(tmp_path / name), shuffle_seed=11,
                                         shard_bytes=50_000, bucket_bytes=size))
                    for name, size in (("small", 2_000), ("large", 10**9)))
    assert [s["sha256"] for s in small["shards"]] == [s["sha256"] for s in large["shards"]]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl.gz", "jsonl.zst"])
def test_pandas_duckdb_and_datasets_load_the_export(lake: Path, tmp_path: Path, fmt: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    assert run("--lake", str(lake), str(out), "--format", fmt, "--shard-bytes", "50KB") == 0
    rows = manifest_of(out)["totals"]["documents"]
    files = [str(p) for p in shard_paths(out)]
    assert len(files) > 1
    if fmt == "parquet":
        frame = pd.read_parquet(out / "data")
        in_duckdb = duckdb.sql(f"select count(*), count(distinct id) from read_parquet('{out}/data/*.parquet')")
    else:
        frame = pd.concat(pd.read_json(f, lines=True, dtype={"id": str}) for f in files)
        in_duckdb = duckdb.sql(f"select count(*), count(distinct id) from read_json('{out}/data/*.{fmt}')")
    assert len(frame) == rows and frame["text"].str.len().min() > 0
    assert in_duckdb.fetchall() == [(rows, rows)]
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from datasets import load_dataset

    dataset = load_dataset("parquet" if fmt == "parquet" else "json", data_files=files, split="train",
                           cache_dir=str(tmp_path / "hf-cache"))
    assert dataset.num_rows == rows and dataset.column_names == ["id", "text", "url", "title", "lang",
                                                                 "quality_score"]


@pytest.mark.parametrize(("where", "says"), [
    ("no_such_column > 1", "no_such_column"),
    ("quality_score >=", "syntax error"),
    ("true; DROP TABLE documents", "more than one statement"),
    ("true) OR (true", "syntax error"),
])
def test_a_bad_predicate_fails_fast_with_duckdbs_message_and_the_columns(
        lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, says: str) -> None:
    started = time.monotonic()
    assert run("--lake", str(lake), str(tmp_path / "out"), "--where", where) == cli.EXIT_USAGE
    assert time.monotonic() - started < 2
    error = capsys.readouterr().err
    assert says in error and "quality_score (DOUBLE)" in error and "lang (VARCHAR)" in error
    assert not (tmp_path / "out").exists()


def test_an_unknown_column_fails_with_the_columns(lake: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--lake", str(lake), str(tmp_path / "out"), "--columns", "text,body") == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert "no column body" in error and "doc_id (VARCHAR)" in error


def test_an_export_refuses_a_folder_that_holds_one_unless_replacing(lake: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run("--lake", str(lake), str(out), "--shard-bytes", "50KB") == 0
    first = manifest_of(out)
    assert run("--lake", str(lake), str(out), "--where", "lang = 'de'") == cli.EXIT_USAGE
    assert "already holds an export" in capsys.readouterr().err and manifest_of(out) == first
    assert run("--lake", str(lake), str(out), "--where", "lang = 'de'", "--replace") == 0
    assert len(pd.read_parquet(out / "data")) == manifest_of(out)["totals"]["documents"] < first["totals"]["documents"]
    (out / "notes.txt").write_text("mine")
    assert run("--lake", str(lake), str(out), "--replace") == cli.EXIT_USAGE
    assert "not an export (notes.txt)" in capsys.readouterr().err and (out / "notes.txt").exists()


def test_an_empty_lake_gives_an_empty_export_with_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    assert run("--lake", str(tmp_path / "lake"), str(tmp_path / "out"), "--where", "quality_score > 0.5") == 0
    manifest = manifest_of(tmp_path / "out")
    assert manifest["totals"] == {"documents": 0, "characters": 0, "words": 0} and manifest["runs"] == []
    assert [s["rows"] for s in manifest["shards"]] == [0]
    assert len(pd.read_parquet(tmp_path / "out" / "data")) == 0


def test_a_bucket_lake_exports_into_a_bucket_as_it_does_locally(lake: Path, tmp_path: Path,
                                                                s3_server: S3Server) -> None:
    bucket = s3_server.bucket("export-test")
    s3_server.upload_tree(lake, f"{bucket}/lake")
    local = export(ExportOptions(lake=str(lake), out=str(tmp_path / "out"), where=PREDICATE, shard_bytes=40_000))
    remote = export(ExportOptions(lake=f"{bucket}/lake", out=f"{bucket}/out", where=PREDICATE, shard_bytes=40_000))
    assert remote["shards"] == local["shards"] and remote["totals"] == local["totals"]
    keys = sorted(o["Key"] for o in s3_server.client().list_objects_v2(Bucket="export-test", Prefix="out/")["Contents"])
    assert keys == sorted(["out/manifest.json", *(f"out/{s['path']}" for s in local["shards"])])
    with pytest.raises(ExportUsageError, match="already holds an export"):
        export(ExportOptions(lake=f"{bucket}/lake", out=f"{bucket}/out"))


SIZES = {"": 1, "B": 1, "KB": 1000, "kb": 1000, "MB": 10**6, "GB": 10**9, "KiB": 1024, "MiB": 2**20, "GiB": 2**30}


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(SIZES)))
def test_sizes_are_bytes_or_decimal_or_binary_units(number: int, unit: str) -> None:
    assert parse_size(f"{number}{unit}") == number * SIZES[unit]
    assert parse_size(f" {number} {unit} ") == number * SIZES[unit]


@given(st.text(alphabet=st.characters(blacklist_categories=("Nd",))) | st.from_regex(r"-\d+[KMG]B", fullmatch=True)
       | st.from_regex(r"\d+ ?(kB2|MBB|Kb/s|bytes|PB)", fullmatch=True))
def test_what_is_not_a_size_is_refused(text: str) -> None:
    with pytest.raises(ExportUsageError, match="not a size"):
        parse_size(text)

"""SOURCE in an object store (S3, Cloud Storage, Azure Blob: servers on 127.0.0.1): the same files, units and
rejects as on disk."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from s3fs import S3FileSystem

from flows.read import InputFile, ReadConfig, SourceError, discover, plan_shards, read_shard, streams
from flows.storage import StorageError
from tests.support.servers import OBJECT_STORES, STORE_SERVERS


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, corpora: Path) -> Path:
    """Every input kind, good and bad, in nested folders."""
    root = tmp_path_factory.mktemp("tree")
    (root / "2026-12-01" / "pages").mkdir(parents=True)
    (root / "2026-12-02").mkdir()
    (root / "2026-11-30").mkdir()
    (root / "top.txt").write_text("a page at the top")
    (root / "2026-12-01" / "pages" / "deep page.html").write_text("<html><body><p>Hello there</p></body></html>")
    (root / "2026-12-01" / "note.md.gz").write_bytes(gzip.compress(b"# Title\n\ncompressed words"))
    (root / "2026-12-01" / "broken.txt.gz").write_bytes(b"not gzip at all")
    (root / "2026-12-01" / "bomb.txt.gz").write_bytes(gzip.compress(b"\0" * (2 << 20)))
    lines = [json.dumps({"text": f"Document {i}. " + "word " * 200, "id": str(i)}) for i in range(60)]
    lines[7] = "{not json"
    (root / "2026-12-01" / "dump.jsonl").write_text("\n".join(lines) + "\n")
    (root / "2026-12-02" / "dump.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines[:20]) + "\n").encode()))
    for warc in sorted((corpora / "warc_samples_dolma").glob("*.warc.gz")):
        shutil.copyfile(warc, root / "2026-12-02" / warc.name)
    raw = gzip.decompress((corpora / "warc_samples_dolma" / "sample-0000.warc.gz").read_bytes())
    (root / "2026-11-30" / "cut.warc").write_bytes(raw[: len(raw) // 2])
    rows = {"text": [f"Row {i}. " + "word " * 100 for i in range(40)] + [None, "x" * 600_000],
            "url": [f"https://example.org/{i}" for i in range(42)]}
    pq.write_table(pa.table(rows), root / "2026-12-02" / "rows.parquet", row_group_size=8)
    (root / "2026-12-02" / "fake.parquet").write_bytes(b"not parquet")
    (root / "2026-12-02" / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    return root


@pytest.fixture(scope="module", params=OBJECT_STORES)
def server(request: pytest.FixtureRequest) -> Any:
    """Each object store in turn (S3, Cloud Storage, Azure Blob): its server, settings in the environment."""
    return request.getfixturevalue(str(STORE_SERVERS[request.param]))


@pytest.fixture(scope="module")
def bucket(server: Any, tree: Path) -> str:
    S3FileSystem.clear_instance_cache()  # a client made by an earlier test may hold another endpoint
    uri = server.bucket("raw-read")
    server.upload_tree(tree, f"{uri}/crawl")
    return f"{uri}/crawl"


CONFIG = ReadConfig(max_unit_bytes=500_000, max_inflated_bytes=400_000)


def units(source: str, config: ReadConfig = CONFIG) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    found = discover(source, {})
    docs, rejects = [], []
    for shard in plan_shards(found.files, config, {}):
        shard_docs, shard_rejects = read_shard(shard, config, {})
        docs += [(d.doc_id, d.source_uri, d.text) for d in shard_docs]
        rejects += [(r.unit_id, r.source_uri, r.reason) for r in shard_rejects]
    return docs, rejects


def listing(source: str) -> list[tuple[str, int]]:
    return [(item.rel, item.size) for item in discover(source, {}).files]


def test_a_prefix_an_object_and_a_glob_list_as_the_same_tree_on_disk(tree: Path, bucket: str) -> None:
    assert listing(bucket) == listing(str(tree))
    assert len(listing(bucket)) == 13
    assert listing(f"{bucket}/") == listing(str(tree))
    dump = tree / "2026-12-01" / "dump.jsonl"
    assert listing(f"{bucket}/2026-12-01/dump.jsonl") == [("dump.jsonl", dump.stat().st_size)]
    for pattern in ("2026-12-*/**/*.gz", "**/*.jsonl*", "*/*.parquet", "2026-1?-0[12]/**"):
        assert listing(f"{bucket}/{pattern}") == listing(f"{tree}/{pattern}"), pattern
    assert [rel for rel, _ in listing(f"{bucket}/2026-12-*/**/*.warc.gz")] == [
        "2026-12-02/sample-0000.warc.gz", "2026-12-02/sample-0001.warc.gz"]


def test_objects_carry_their_uri_size_and_etag_and_local_files_none(server: Any, tree: Path, bucket: str) -> None:
    remote = {item.rel: item for item in discover(bucket, {}).files}
    head = server.filesystem().info("raw-read/crawl/top.txt")
    assert remote["top.txt"].path == f"{server.scheme}://raw-read/crawl/top.txt"
    assert remote["top.txt"].etag == (head.get("ETag") or head["etag"]) and remote["top.txt"].size == head["size"]
    assert all(item.etag for item in remote.values())
    assert all(item.etag is None for item in discover(str(tree)).files)
    assert discover(bucket, {}).root == f"{server.scheme}://raw-read/crawl"


@pytest.mark.parametrize("block", [16 << 20, 4096], ids=["whole-objects", "ranged-reads"])
def test_every_kind_reads_from_a_store_as_from_disk(tree: Path, bucket: str, block: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "_REMOTE_BLOCK", block)  # 4 KiB: every object but the smallest is streamed
    local_docs, local_rejects = units(str(tree))
    remote_docs, remote_rejects = units(bucket)
    assert remote_docs == local_docs
    assert remote_rejects == local_rejects
    assert len(local_docs) > 150
    assert {reason for _, _, reason in local_rejects} == {
        "gzip_invalid", "gzip_too_large", "jsonl_invalid_json", "warc_truncated", "empty", "unit_too_large",
        "parquet_invalid", "unsupported_type"}


@pytest.mark.parametrize("block", [16 << 20, 4096], ids=["whole-objects", "ranged-reads"])
def test_big_jsonl_and_parquet_objects_are_cut_into_shards_read_with_seeks(
        tree: Path, bucket: str, block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "_REMOTE_BLOCK", block)
    config = CONFIG.model_copy(update={"shard_bytes": 3_000})
    for name in ("2026-12-01/dump.jsonl", "2026-12-02/rows.parquet"):
        remote_shards = plan_shards(discover(f"{bucket}/{name}", {}).files, config, {})
        local_shards = plan_shards(discover(str(tree / name)).files, config)
        assert len(remote_shards) > 1
        assert [(i.start, i.stop, i.size) for s in remote_shards for i in s] == [
            (i.start, i.stop, i.size) for s in local_shards for i in s]
        assert units(f"{bucket}/{name}", config) == units(str(tree / name), config) == units(str(tree / name))


def test_a_missing_bucket_or_prefix_names_the_uri(server: Any, bucket: str) -> None:
    kind = server.scheme
    with pytest.raises((SourceError, StorageError), match=f"{kind}://no-such-bucket/crawl"):
        discover(f"{kind}://no-such-bucket/crawl", {})
    with pytest.raises(SourceError, match=rf"{kind}://raw-read/nothing-here.*does not exist"):
        discover(f"{kind}://raw-read/nothing-here", {})
    with pytest.raises(SourceError, match=rf"{kind}://raw-read/crawl/\*\*/\*\.csv.*matches no object"):
        discover(f"{bucket}/**/*.csv", {})


def test_an_unreachable_store_fails_the_read_instead_of_rejecting_the_file(s3_server: Any) -> None:
    # S3's client can be told to ask once; gcsfs and adlfs retry a dead endpoint for a minute and more.
    uri = s3_server.bucket("raw-dead")
    s3_server.client().put_object(Bucket="raw-dead", Key="crawl/top.txt", Body=b"a page at the top")
    dead = {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}, "skip_instance_cache": True,
            "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}
    with pytest.raises(SourceError, match=r"s3://raw-dead/crawl.*cannot be listed"):
        discover(f"{uri}/crawl", dead)
    item = next(i for i in discover(f"{uri}/crawl", {}).files if i.rel == "top.txt")
    with pytest.raises(StorageError, match=r"s3://raw-dead/crawl/top\.txt"):
        read_shard([item], CONFIG, dead)


def test_an_object_deleted_after_listing_is_a_reject(server: Any, bucket: str) -> None:
    fs = server.filesystem()
    fs.pipe_file("raw-read/gone/page.txt", b"soon gone")
    item = discover(f"{server.scheme}://raw-read/gone", {}).files[0]
    fs.rm_file("raw-read/gone/page.txt")
    docs, rejects = read_shard([item], CONFIG, {})
    assert docs == [] and [(r.source_uri, r.reason) for r in rejects] == [("page.txt", "unreadable")]


def test_a_file_uri_is_a_local_path(tree: Path) -> None:
    assert listing(f"file://{tree}") == listing(str(tree))
    item = InputFile(f"file://{tree}/top.txt", "top.txt", (tree / "top.txt").stat().st_size)
    assert [d.text for d in read_shard([item], CONFIG)[0]] == ["a page at the top"]

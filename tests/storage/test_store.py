"""A Store on a local folder and on fsspec's memory:// store: keys, atomic writes, listing, reading, messages."""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.storage import StorageError, Store, StoredObject, check_source
from flows.storage.errors import listing, reading


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    uri = str(tmp_path / "lake") if request.param == "local" else f"memory://siftlake-{uuid.uuid4().hex}"
    found = Store(uri)
    yield found
    found.delete("")


def test_writes_reads_and_listings_by_key(store: Store) -> None:
    store.write_bytes("runs/1/state.json", b'{"done": 2}')
    store.write_bytes("runs/2/a.parquet", b"abc")
    store.write_bytes("top.txt", b"top")
    assert store.read_json("runs/1/state.json") == {"done": 2}
    assert store.exists("top.txt") and not store.exists("nope.txt")
    assert store.files() == ["runs/1/state.json", "runs/2/a.parquet", "top.txt"]
    assert store.files("runs/2") == ["runs/2/a.parquet"] and store.files("nothing") == []
    assert store.children("runs") == ["1", "2"] and store.children("nothing") == []
    store.move("runs/2/a.parquet", "runs/3/a.parquet")
    assert store.read_bytes("runs/3/a.parquet") == b"abc" and not store.exists("runs/2/a.parquet")
    store.delete("runs")
    store.delete("runs")  # nothing there: nothing happens
    assert store.files() == ["top.txt"]


def test_upload_and_download_go_through_local_files(store: Store, tmp_path: Path) -> None:
    (tmp_path / "index.bin").write_bytes(b"\x00\x01" * 100)
    store.upload(tmp_path / "index.bin", "index/seg-1.bin")
    store.download("index/seg-1.bin", tmp_path / "cache" / "seg-1.bin")
    assert (tmp_path / "cache" / "seg-1.bin").read_bytes() == b"\x00\x01" * 100
    assert not list((tmp_path / "cache").glob(".*"))  # no partial file left behind


def test_objects_are_listed_with_their_sizes_and_by_pattern(store: Store) -> None:
    store.write_bytes("2026-12-01/dump.jsonl", b"x" * 10)
    store.write_bytes("2026-12-01/pages/a.html", b"<p>")
    store.write_bytes("2026-12-02/b.txt", b"b")
    assert sorted((o.key, o.size) for o in store.objects()) == [
        ("2026-12-01/dump.jsonl", 10), ("2026-12-01/pages/a.html", 3), ("2026-12-02/b.txt", 1)]
    assert [o.key for o in store.objects("*/*.txt")] == ["2026-12-02/b.txt"]
    assert sorted(o.key for o in store.objects("2026-12-01/**/*.html")) == ["2026-12-01/pages/a.html"]
    only = store.object_at("2026-12-02/b.txt")
    assert only is not None and (only.key, only.size) == ("2026-12-02/b.txt", 1)
    assert store.object_at("2026-12-01") is None  # a folder, not an object


def test_objects_are_fetched_whole_or_read_in_ranges(store: Store) -> None:
    payload = bytes(range(256)) * 64
    store.write_bytes("big.bin", payload)
    assert store.fetch("big.bin") == payload
    with store.open_ranged("big.bin", 1024) as stream:
        stream.seek(1000)
        assert stream.read(100) == payload[1000:1100]
        assert stream.read() == payload[1100:]
    with pytest.raises(FileNotFoundError):
        store.fetch("gone.bin")  # a missing object is the caller's to judge: not a store failure


def test_a_missing_name_is_a_storage_error_naming_the_uri(store: Store) -> None:
    with pytest.raises(StorageError, match=rf"{store.url('nope')}: does not exist"):
        store.object_at("nope")


def test_local_objects_have_no_etag_and_a_store_survives_pickling(tmp_path: Path) -> None:
    store = Store(f"file://{tmp_path}")
    store.write_bytes("a.txt", b"a")
    assert store.objects() == [StoredObject("a.txt", 1, None)]
    again = pickle.loads(pickle.dumps(store))
    assert again == store and hash(again) == hash(store) and again.read_bytes("a.txt") == b"a"
    assert repr(store) == f"Store({str(tmp_path)!r})" and store.url("a.txt") == f"{tmp_path}/a.txt"
    assert not store.remote and store.local("a.txt") == tmp_path / "a.txt"


def test_store_failures_become_messages_that_name_the_uri_and_what_to_check() -> None:
    uri = "s3://raw/crawl/top.txt"
    read_failed = r"s3://raw/crawl/top\.txt: reading from the store failed \(TimeoutError"
    with pytest.raises(StorageError, match=read_failed), reading(uri):
        raise TimeoutError("read timed out")
    with pytest.raises(FileNotFoundError), reading(uri):
        raise FileNotFoundError(uri)
    cases = [(PermissionError("403"), r"s3://raw: cannot be listed, access denied.*credentials"),
             (FileNotFoundError("raw"), r"s3://raw: the bucket is gone; check the name and the endpoint"),
             (ConnectionError("refused"), r"s3://raw: cannot be listed, cannot reach.*ConnectionError")]
    for err, message in cases:
        with pytest.raises(StorageError, match=message), listing("s3://raw", "the bucket is gone"):
            raise err
    # Each store names its own settings.
    others = [("gs://raw", FileNotFoundError("raw"), r"gs://raw: the bucket is gone; check .*STORAGE_EMULATOR_HOST"),
              ("az://raw", RuntimeError("AuthenticationFailed: the signature"),
               r"az://raw: cannot be listed, access denied .*AZURE_STORAGE_CONNECTION_STRING"),
              ("gs://raw", OSError("Forbidden: b/raw/o"), r"gs://raw: cannot be listed, access denied .*"
                                                          "GOOGLE_APPLICATION_CREDENTIALS")]
    for uri, err, message in others:
        with pytest.raises(StorageError, match=message), listing(uri, "the bucket is gone"):
            raise err


def test_a_lock_needs_an_object_store_with_conditional_writes(tmp_path: Path) -> None:
    for store in (Store(str(tmp_path)), Store("memory://siftlake-lock")):
        with pytest.raises(StorageError, match=rf"{store.uri}: the cross-machine lock needs conditional writes, "
                                               "which siftlake implements for s3://, gs:// and az://"):
            store.create_exclusive("lock", b"me")


def test_a_local_source_must_exist_unless_it_is_a_glob(tmp_path: Path) -> None:
    check_source(str(tmp_path))
    check_source(f"{tmp_path}/nothing/**/*.jsonl")
    with pytest.raises(StorageError, match=r"SOURCE '.*/nope' does not exist"):
        check_source(str(tmp_path / "nope"))

"""``siftlake forget`` on a lake built by the real ingest: rows and index entries gone in one commit, only the files
holding them rewritten, clusters re-kept, the list blocked for later runs, the log, bad lists, the lock, export."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from flows import cli
from flows.export import ExportOptions
from flows.export.job import export
from flows.lake import lake_lock
from flows.report import write_report
from flows.storage import Store
from tests.forget import corpus
from tests.forget.conftest import GROUP

pytestmark = [pytest.mark.usefixtures("prefect_server"), GROUP]


@pytest.fixture
def built(forget_lake: Path) -> Path:
    return forget_lake


@pytest.fixture
def lake(built: Path, tmp_path: Path) -> Path:
    return corpus.copy_lake(built, tmp_path / "lake")


def forget(lake: Path, kind: str, lines: list[str], *extra: str, tmp: Path | None = None) -> tuple[int, dict[str, Any]]:
    folder = tmp or lake.parent
    listing = folder / f"list-{kind}-{time.monotonic_ns()}.txt"
    listing.write_text("".join(f"{line}\n" for line in lines))
    code = cli.main(["forget", "--lake", str(lake), f"--{kind.replace('_', '-')}", str(listing),
                     "--reason", "request #42", "--json", *extra])
    logs = sorted((lake / "_takedowns" / "log").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return code, json.loads(logs[-1].read_text()) if logs and code == 0 else {}


def digests(lake: Path) -> dict[str, str]:
    return {str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((lake / "documents").glob("**/*.parquet"))}


def run_files(lake: Path) -> dict[str, str]:
    """run_id -> documents file (relative), one file per run."""
    return {p.stem.removeprefix("run-"): str(p.relative_to(lake)) for p in (lake / "documents").glob("**/*.parquet")}


def test_the_built_lake_has_clusters_of_every_kind(built: Path) -> None:
    rows = corpus.documents(built)
    assert len(rows) == 41 + 33
    kinds = {r["dup_kind"] for r in rows if r["is_duplicate"]}
    assert kinds == {"exact", "near", "contained"}
    corpus.clusters_are_whole(built)


def test_forget_urls_rewrites_only_the_files_holding_them(lake: Path) -> None:
    before, rows = digests(lake), corpus.documents(lake)
    gone = ["https://site-c.example/n/3", "http://SITE-C.example/n/4#comments", "https://site-c.example:443/n/5"]
    code, log = forget(lake, "urls", gone)
    assert code == 0
    after = digests(lake)
    second_run = {r["run_id"] for r in rows if r["url"].startswith("https://site-c.example/")}
    assert len(second_run) == 1
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == [run_files(lake)[second_run.pop()]] == log["files_rewritten"]
    remaining = corpus.documents(lake)
    assert len(remaining) == len(rows) - 3
    gone_urls = {r["url"] for r in rows} - {r["url"] for r in remaining}
    assert gone_urls == {f"https://site-c.example/n/{i}" for i in (3, 4, 5)}
    removed = {r["doc_id"] for r in rows} - {r["doc_id"] for r in remaining}
    assert set(corpus.index_entries(lake)) == {r["doc_id"] for r in remaining}
    assert log["counts"] == {"matched": 3, "removed": 3, "copies": 0, "re_kept_clusters": 0, "re_pointed": 0,
                             "files_rewritten": 1, "rows_before": len(rows), "rows_after": len(rows) - 3}
    assert log["reason"] == "request #42" and len(log["list"]["sha256"]) == 64 and log["list"]["entries"] == 3
    assert log["blocked"] == {"urls": 3, "removed_doc_ids": 3, "fingerprints": 0}
    logged = json.dumps(log)
    for row in rows:
        if row["doc_id"] in removed:
            assert row["text"][:60] not in logged, "the log never holds the removed text"
    corpus.clusters_are_whole(lake)
    assert not any((lake / "_staging").iterdir())


def test_a_kept_document_removed_without_copies_hands_its_cluster_to_the_next_copy(lake: Path) -> None:
    rows = corpus.documents(lake)
    kept = next(r for r in rows if r["url"] == "https://site-a.example/p/0")
    members = [r for r in rows if r["dup_cluster"] == kept["doc_id"] and r["doc_id"] != kept["doc_id"]]
    assert len(members) == 1 and not kept["is_duplicate"]  # the mirror's exact copy, from the second run
    near_kept = next(r for r in rows if r["url"] == "https://site-a.example/p/5")
    near_members = [r for r in rows if r["dup_cluster"] == near_kept["doc_id"] and r["doc_id"] != near_kept["doc_id"]]
    in_run = [r for r in rows if r["dup_cluster"] == next(x for x in rows if x["url"] == "https://mirror.example.net/20"
                                                          )["dup_cluster"]]
    assert len(in_run) == 2
    code, log = forget(lake, "urls", ["https://site-a.example/p/0", "https://site-a.example/p/5",
                                      in_run[0]["url"] if not in_run[0]["is_duplicate"] else in_run[1]["url"]])
    assert code == 0 and log["counts"]["removed"] == 3 and log["counts"]["re_kept_clusters"] == 3
    after = {r["doc_id"]: r for r in corpus.documents(lake)}
    for old, heirs in ((kept, members), (near_kept, near_members)):
        best = min(heirs, key=lambda r: (-r["quality_score"], -r["n_chars"], r["doc_id"]))
        assert not after[best["doc_id"]]["is_duplicate"] and after[best["doc_id"]]["dup_cluster"] == best["doc_id"]
        assert {"cluster": old["doc_id"], "kept": best["doc_id"], "members": len(heirs) - 1} in log["re_kept"]
    assert len(log["files_rewritten"]) == 2  # the first run's file (removals), the second's (the heirs)
    corpus.clusters_are_whole(lake)


def test_with_copies_removes_the_clusters_and_later_copies_are_taken_down(lake: Path, tmp_path: Path) -> None:
    rows = corpus.documents(lake)
    targets = ["https://site-a.example/p/1", "https://mirror.example.net/6", "https://site-a.example/p/11"]
    code, log = forget(lake, "urls", targets, "--with-copies")
    assert code == 0
    # base 1 and its exact copy; near copy 6 and its kept base 6; base 11 and its teaser
    assert log["counts"]["matched"] == 3 and log["counts"]["removed"] == 6 and log["counts"]["copies"] == 3
    assert log["blocked"]["fingerprints"] == 6
    assert len(corpus.documents(lake)) == len(rows) - 6
    corpus.clusters_are_whole(lake)
    # Copies of the removed texts at new URLs, and a page unrelated to them, in a new run.
    recrawl = [corpus.page("c1", "https://elsewhere.example/1", corpus.text(1)),
               corpus.page("c6", "https://elsewhere.example/6", corpus.near_copy(corpus.text(6), 7)),
               corpus.page("c11", "https://elsewhere.example/11", corpus.excerpt(corpus.text(11))),
               corpus.page("fresh", "https://elsewhere.example/fresh", corpus.text(5000))]
    counts = corpus.ingest(corpus.write_jsonl(tmp_path / "again" / "c.jsonl", recrawl), lake)
    assert counts["documents"] == 1 and counts["reject_reasons"] == {"dedup/taken_down": 3}


def test_a_near_copy_of_a_document_forgotten_without_copies_is_new(lake: Path, tmp_path: Path) -> None:
    code, _ = forget(lake, "urls", ["https://site-a.example/p/30"])
    assert code == 0
    recrawl = [corpus.page("n30", "https://elsewhere.example/30", corpus.near_copy(corpus.text(30), 3))]
    counts = corpus.ingest(corpus.write_jsonl(tmp_path / "again" / "n.jsonl", recrawl), lake)
    assert counts["documents"] == 1 and counts["duplicates"] == 0


def test_a_recrawl_of_forgotten_pages_and_domains_gives_rejects_and_no_documents(lake: Path, tmp_path: Path) -> None:
    rows = corpus.documents(lake)
    assert forget(lake, "domains", ["site-b.example"])[0] == 0
    on_b = [r for r in rows if "site-b.example" in r["url"]]
    assert on_b and len(corpus.documents(lake)) == len(rows) - len(on_b)
    assert forget(lake, "urls", [f"https://site-a.example/p/{i}" for i in (2, 3)])[0] == 0
    # The same pages in a new file: other source_uri, other doc_ids; matched by URL and host.
    again = [corpus.base(i) for i in range(10)] + [corpus.page("sub", "https://deep.news.site-b.example/x", "Fresh "
                                                                 + corpus.text(77))]
    counts = corpus.ingest(corpus.write_jsonl(tmp_path / "recrawl" / "r.jsonl", again), lake)
    blocked = sum(1 for i in range(10) if i % 5 == 4) + 2 + 1
    assert counts["reject_reasons"].get("read/taken_down") == blocked
    assert counts["documents"] == 10 - blocked + 1  # the others are copies of pages the lake holds


def test_malformed_lines_are_named_and_nothing_is_removed(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = digests(lake)
    code, _ = forget(lake, "urls", ["https://site-a.example/p/1", "# a comment", "", "ftp://x.example/a",
                                    "not a url", "https://site-a.example/p/2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "line 4: 'ftp://x.example/a'" in err and "line 5: 'not a url'" in err and "nothing was removed" in err
    assert "line 1" not in err and "line 6" not in err
    code, _ = forget(lake, "domains", ["example.com", "https://example.org/", "under_score.example", "localhost"])
    assert code == 2
    err = capsys.readouterr().err
    assert [f"line {n}:" in err for n in (1, 2, 3, 4)] == [False, True, True, True]
    assert forget(lake, "doc_ids", ["0123456789abcdef0123456789ABCDEF", "xyz"])[0] == 2
    assert "line 2: 'xyz'" in capsys.readouterr().err
    assert digests(lake) == before and not (lake / "_takedowns").exists()


def test_an_empty_match_removes_nothing_and_says_so(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = corpus.snapshot(lake)
    listing = lake.parent / "none.txt"
    listing.write_text("https://never.example/crawled\n")
    assert cli.main(["forget", "--lake", str(lake), "--urls", str(listing), "--reason", "pre-emptive"]) == 0
    assert "nothing was removed" in capsys.readouterr().out
    after = corpus.snapshot(lake)
    assert after["documents"] == before["documents"] and after["index"] == before["index"]
    assert after["blocked"][0] == ["never.example/crawled"]  # blocked for later runs all the same


def test_a_dry_run_changes_nothing(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = corpus.snapshot(lake)
    listing = lake.parent / "dry.txt"
    listing.write_text("site-a.example\n")
    assert cli.main(["forget", "--lake", str(lake), "--domains", str(listing), "--reason", "x", "--dry-run"]) == 0
    assert "would remove" in capsys.readouterr().out
    assert corpus.snapshot(lake) == before and not (lake / "_takedowns").exists()


def test_a_forget_while_a_run_holds_the_lake_refuses_or_waits(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = lake.parent / "one.txt"
    listing.write_text("https://site-a.example/p/7\n")
    args = ["forget", "--lake", str(lake), "--urls", str(listing), "--reason", "x"]
    with lake_lock(lake, 0):
        assert cli.main(args) == 1
    assert "is being written by" in capsys.readouterr().err
    held = threading.Event()

    def hold() -> None:
        with lake_lock(lake, 0):
            held.set()
            time.sleep(1.5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    assert cli.main([*args, "--lock-wait-s", "30"]) == 0
    holder.join()
    assert "https://site-a.example/p/7" not in {r["url"] for r in corpus.documents(lake)}


def test_no_lake_there_is_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "one.txt"
    listing.write_text("https://site-a.example/p/7\n")
    assert cli.main(["forget", "--lake", str(tmp_path / "nolake"), "--urls", str(listing), "--reason", "x"]) == 1
    assert "no lake at" in capsys.readouterr().err


def test_export_and_the_report_leave_out_what_was_forgotten(lake: Path, tmp_path: Path) -> None:
    code, log = forget(lake, "urls", ["https://site-a.example/p/8", "https://site-c.example/n/9"], "--with-copies")
    assert code == 0
    manifest = export(ExportOptions(lake=str(lake), out=str(tmp_path / "out")))
    kept = [r for r in corpus.documents(lake) if not r["is_duplicate"]]
    assert manifest["totals"]["documents"] == len(kept)
    urls = set(ds.dataset(str(tmp_path / "out" / "data"), format="parquet").to_table(columns=["url"])
               .column("url").to_pylist())
    assert "https://site-a.example/p/8" not in urls and "https://site-c.example/n/9" not in urls
    data = write_report(Store(str(lake)), tmp_path / "r.html")
    assert data.totals["documents"] == log["counts"]["rows_after"]


def test_a_forgotten_unit_read_again_from_its_place_is_a_taken_down_reject_once(built: Path, lake: Path) -> None:
    """A unit's id stays known while its row is in the lake: once forgotten it is read again (and rejected, being
    blocked), then known through its reject; the units still in the lake stay skipped throughout."""
    gone = ["https://site-c.example/n/3", "https://site-c.example/n/4"]
    assert forget(lake, "urls", gone)[0] == 0
    source = built.parent / "run2"  # the second run's file, read from the same place: the same unit ids
    again = corpus.ingest(source, lake)
    assert again["reject_reasons"] == {"read/taken_down": 2}
    assert again["documents"] == 0 and again["skipped_known"] == len(corpus.second_run()) - 2
    third = corpus.ingest(source, lake)
    assert third["skipped_known"] == len(corpus.second_run()) and third["rejects"] == 0

"""Listing SOURCE on disk: a folder walked recursively, a file, a glob; links out of it and loops not followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flows.read import SourceError, discover
from tests.read.helpers import read_all


def test_directory_is_read_recursively_with_posix_relative_uris(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "deep page.html").write_text("<html><body><p>Hello there</p></body></html>")
    (tmp_path / "top.md").write_text("# Title\n\nSome text.")
    docs, rejects = read_all(tmp_path)
    assert sorted(d.source_uri for d in docs) == ["a/b/deep page.html", "top.md"]
    assert {d.source_uri: d.kind for d in docs} == {"a/b/deep page.html": "html", "top.md": "text"}
    assert rejects == []


def test_a_single_file_and_a_glob_are_sources(tmp_path: Path) -> None:
    for name in ("one.txt", "two.txt", "three.html"):
        (tmp_path / name).write_text(f"content of {name}")
    assert [d.source_uri for d in read_all(tmp_path / "one.txt")[0]] == ["one.txt"]
    assert sorted(d.source_uri for d in read_all(f"{tmp_path}/*.txt")[0]) == ["one.txt", "two.txt"]


def test_missing_source_fails_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        discover(str(tmp_path / "nope"))
    with pytest.raises(SourceError, match="matches no file"):
        discover(f"{tmp_path}/*.jsonl")


def test_symlinks_out_of_source_and_loops_are_not_followed(tmp_path: Path) -> None:
    source, outside = tmp_path / "src", tmp_path / "outside"
    source.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("do not read me")
    (source / "real.txt").write_text("inside")
    os.symlink(outside / "secret.txt", source / "escape.txt")
    os.symlink(outside, source / "escape_dir")
    os.symlink(source, source / "loop")
    docs, rejects = read_all(source)
    assert [d.source_uri for d in docs] == ["real.txt"]
    assert {r.source_uri: r.reason for r in rejects} == {
        "escape.txt": "outside_source", "escape_dir": "outside_source", "loop": "symlink_loop"}

"""Takedown lists: the keys URLs and domains match by, malformed lines, and the block list's checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flows.dedup import DedupConfig, fingerprints
from flows.forget import Blocklist, ForgetUsageError
from flows.forget.lists import domain_key, read_list, url_key
from tests.forget.corpus import excerpt, near_copy, text


@pytest.mark.parametrize(("url", "key"), [
    ("https://example.com/a", "example.com/a"),
    ("HTTP://Example.COM/a#top", "example.com/a"),
    ("https://example.com:443/a?b=1", "example.com/a?b=1"),
    ("http://example.com:8080/", "example.com:8080/"),
    ("https://example.com", "example.com/"),
    ("https://bücher.example/x", "xn--bcher-kva.example/x"),
    ("ftp://example.com/a", None), ("example.com/a", None), ("https:///a", None), ("https://a b.com/", None),
    ("https://example.com:99999/", None),
])
def test_url_keys(url: str, key: str | None) -> None:
    assert url_key(url) == key


@pytest.mark.parametrize(("line", "key"), [
    ("Example.COM", "example.com"), ("*.example.com", "example.com"), (".example.com.", "example.com"),
    ("localhost", None), ("https://example.com", None), ("exa mple.com", None), ("-bad.example", None),
])
def test_domain_keys(line: str, key: str | None) -> None:
    assert domain_key(line) == key


def test_a_list_records_its_digest_and_skips_comments(tmp_path: Path) -> None:
    listing = tmp_path / "l.txt"
    listing.write_text("# takedown 42\n\nhttps://a.example/1\nhttp://a.example/1\n")
    wanted = read_list("urls", listing)
    assert wanted.keys == {"a.example/1"} and wanted.lines == 2 and len(wanted.sha256) == 64
    listing.write_text("# nothing\n")
    with pytest.raises(ForgetUsageError, match="no entries"):
        read_list("urls", listing)
    with pytest.raises(ForgetUsageError, match="cannot read"):
        read_list("urls", tmp_path / "missing.txt")


def test_more_than_twenty_bad_lines_are_summed_up(tmp_path: Path) -> None:
    listing = tmp_path / "l.txt"
    listing.write_text("".join(f"bad {i}\n" for i in range(30)))
    with pytest.raises(ForgetUsageError, match=r"(?s)30 line\(s\).*and 10 more"):
        read_list("urls", listing)


def test_the_blocklist_matches_urls_hosts_ids_and_copies() -> None:
    config = DedupConfig()
    original = text(3)
    sigs, sizes = fingerprints([original], config)
    blocked = Blocklist(urls=frozenset({"a.example/x"}), domains=frozenset({"b.example"}),
                        doc_ids=frozenset({"f" * 32}), signatures=sigs, sizes=np.asarray(sizes, np.uint32))
    assert blocked.unit_reason("0" * 32, "http://A.example/x#y")
    assert blocked.unit_reason("0" * 32, "https://deep.sub.b.example/q")
    assert not blocked.unit_reason("0" * 32, "https://notb.example/q")
    assert blocked.unit_reason("f" * 32, None)
    assert not blocked.unit_reason("0" * 32, None)
    others = [original, near_copy(original, 1), excerpt(original), original + "\n\n" + text(99), text(4)]
    their_sigs, their_sizes = fingerprints(others, config)
    reasons = blocked.copy_reasons(their_sigs, their_sizes, config)
    assert [r is not None for r in reasons] == [True, True, True, True, False]
    assert "copy" in str(reasons[0]) and "excerpt" in str(reasons[2]) and "contains" in str(reasons[3])
    assert not Blocklist()

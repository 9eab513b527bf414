"""The extract stage: main text from HTML, chrome-free text, and a reject (never an exception) otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.document import Document
from flows.extract import ExtractConfig, extract_batch
from flows.extract import html_modes as extract_html_module
from tests.extract.pages import PARAGRAPHS, TITLE, URL, article_page, html_doc


def test_html_gives_the_article_text_title_and_canonical_url() -> None:
    docs, rejects = extract_batch([html_doc(article_page())], ExtractConfig())
    assert rejects == []
    (doc,) = docs
    assert doc.text.split("\n\n")[-len(PARAGRAPHS) :] == PARAGRAPHS
    assert "Sport" not in doc.text and "All rights reserved" not in doc.text
    assert doc.title == TITLE
    assert doc.url == URL


def test_title_and_url_already_known_are_kept() -> None:
    doc = html_doc(article_page(), title="From the feed", url="https://feed.example.org/1")
    (out,), _ = extract_batch([doc], ExtractConfig())
    assert (out.title, out.url) == ("From the feed", "https://feed.example.org/1")


def test_a_page_without_main_text_is_a_reject_with_a_reason() -> None:
    page = "<html><head><script>var x = 1;</script></head><body><img src='a.png'><div> </div></body></html>"
    docs, rejects = extract_batch([html_doc(page), html_doc("", doc_id="empty")], ExtractConfig())
    assert docs == []
    assert [(r.unit_id, r.stage, r.reason) for r in rejects] == [
        ("d1", "extract", "no_main_content"),
        ("empty", "extract", "no_main_content"),
    ]
    assert all(r.detail.endswith(".") for r in rejects)


def test_plain_text_loses_its_chrome(seeds_dir: Path) -> None:
    text = (seeds_dir / "004_16f9ef7aa1e1d51a.txt").read_text(encoding="utf-8")
    doc = Document(doc_id="s", source_uri="seed.txt", text=text, kind="text")
    (out,), _ = extract_batch([doc], ExtractConfig())
    assert "Advertisement" not in out.text and "Photo: Reuters" not in out.text
    assert out.text.startswith("World’s top AI brains debate if DeepSeek’s model is a game changer\n\n")
    assert "\n\n\n" not in out.text


def test_text_that_is_only_chrome_is_a_reject() -> None:
    doc = Document(doc_id="c", source_uri="c.txt", text="Advertisement\n\n---\n\n18", kind="text")
    docs, rejects = extract_batch([doc], ExtractConfig())
    assert docs == [] and [r.reason for r in rejects] == ["no_main_content"]


def test_an_unexpected_failure_is_an_extract_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(html: str, options: object) -> object:
        raise RuntimeError("parser exploded")

    monkeypatch.setattr(extract_html_module, "extract_html", broken)
    docs, rejects = extract_batch([html_doc(article_page())], ExtractConfig(sandbox=False))
    assert docs == []
    assert rejects[0].reason == "extract_error" and "parser exploded" in rejects[0].detail


def test_config_rejects_unknown_and_invalid_settings() -> None:
    with pytest.raises(ValueError):
        ExtractConfig(timeout_s=0)
    with pytest.raises(ValueError):
        ExtractConfig(tiemout_s=3)  # type: ignore[call-arg]


def test_pages_past_the_html_parser_limits_are_rejected_with_the_limit_named() -> None:
    from flows.extract import ExtractConfig, extract_batch

    deep = "<html><body>" + "<div>" * 5000 + "<p>Deep text that the parser never reaches.</p>" + "</div>" * 5000
    docs, rejects = extract_batch([Document("d", "deep.html", deep, "html")], ExtractConfig())
    assert docs == [] and rejects[0].reason == "html_too_deep" and "5002 levels deep" in rejects[0].detail
    empty = "<html><body><script>x()</script></body></html>"
    _, rejects = extract_batch([Document("e", "empty.html", empty, "html")], ExtractConfig())
    assert rejects[0].reason == "no_main_content"

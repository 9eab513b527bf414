"""The extract stage: main text from HTML, chrome-free text, and a reject (never an exception) otherwise."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import pytest

from flows.document import Document
from flows.extract import ExtractConfig, abandon_extraction, extract_batch, finish_extraction, start_extraction
from flows.extract import html_modes as extract_html_module
from flows.extract.stage import for_thread

PARAGRAPHS = [
    "The city council approved the new cycling plan on Monday after a debate that lasted more than four hours.",
    "Supporters said the network of protected lanes would make the streets safer for children going to school.",
    "Opponents argued that the plan would remove too many parking spaces from the busy shopping district.",
    "The first lanes are expected to open next spring, and the whole network should be finished within three years.",
]
TITLE = "Council approves cycling plan"
URL = "https://news.example.org/2024/council-cycling-plan"


def article_page(title: str = TITLE) -> str:
    body = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    return (
        f"<html><head><title>{title} | Example News</title>"
        f'<meta property="og:title" content="{title}">'
        f'<link rel="canonical" href="{URL}"></head>'
        "<body><nav><ul><li><a href='/'>Home</a></li><li><a href='/sport'>Sport</a></li></ul></nav>"
        f"<article><h1>{title}</h1>{body}</article>"
        "<footer><p>Copyright 2024 Example News. All rights reserved.</p><a href='/privacy'>Privacy</a></footer>"
        "</body></html>"
    )


def html_doc(html: str, doc_id: str = "d1", **fields: str) -> Document:
    return Document(doc_id=doc_id, source_uri=f"{doc_id}.html", text=html, kind="html", **fields)  # type: ignore[arg-type]


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


def slow_page() -> str:
    # An article of 30,000 paragraphs takes seconds to extract: far over the 0.5 s limit below.
    body = "".join(f"<p>{PARAGRAPHS[i % 4]} {i}</p>" for i in range(30_000))
    return f"<html><body><article>{body}</article></body></html>"


def test_a_page_over_the_time_limit_is_rejected_and_the_shard_goes_on() -> None:
    batch = [html_doc(slow_page(), doc_id="slow"), html_doc(article_page(), doc_id="next")]
    docs, rejects = extract_batch(batch, ExtractConfig(timeout_s=0.5))
    assert [(r.unit_id, r.reason) for r in rejects] == [("slow", "extract_timeout")]
    assert "0.5 s" in rejects[0].detail
    # The next page ran in a fresh child, under the same limit, and made it.
    assert [d.doc_id for d in docs] == ["next"]


def test_the_child_is_replaced_after_a_timeout() -> None:
    extract_batch([html_doc(article_page())], ExtractConfig())
    before = for_thread().pid
    extract_batch([html_doc(slow_page(), doc_id="slow")], ExtractConfig(timeout_s=0.5))
    docs, _ = extract_batch([html_doc(article_page())], ExtractConfig())
    assert before is not None and for_thread().pid not in (None, before)
    assert len(docs) == 1


def test_an_unexpected_failure_is_an_extract_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(html: str, options: object) -> object:
        raise RuntimeError("parser exploded")

    monkeypatch.setattr(extract_html_module, "extract_html", broken)
    docs, rejects = extract_batch([html_doc(article_page())], ExtractConfig(sandbox=False))
    assert docs == []
    assert rejects[0].reason == "extract_error" and "parser exploded" in rejects[0].detail


def test_threads_extract_side_by_side() -> None:
    results: dict[int, int] = {}

    def work(n: int) -> None:
        docs, _ = extract_batch([html_doc(article_page(), doc_id=f"t{n}-{i}") for i in range(3)], ExtractConfig())
        results[n] = len(docs)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == {0: 3, 1: 3}


def test_a_threads_child_process_ends_with_the_thread() -> None:
    pids: list[int | None] = []

    def work() -> None:
        extract_batch([html_doc(article_page())], ExtractConfig())
        pids.append(for_thread().pid)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=120)
    gc.collect()
    (pid,) = pids
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_in_process_and_sandboxed_extraction_agree() -> None:
    sandboxed, _ = extract_batch([html_doc(article_page())], ExtractConfig())
    in_process, _ = extract_batch([html_doc(article_page())], ExtractConfig(sandbox=False))
    assert sandboxed[0].text == in_process[0].text


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


SHORT_STORY = [
    "The council voted on Tuesday to rebuild the old footbridge over the river before next winter.",
    "Engineers had warned for years that the wooden deck was rotting, and the bridge was closed in March.",
    "Residents who cross it to reach the station said the detour added twenty minutes to each journey.",
    "Work is due to start in September, and the new bridge should open in time for the Christmas market.",
]


def sidebar_page(paragraph_break: str) -> str:
    """A page without article markup: sidebar with a sign-up box, the story, a share bar, a legal footer."""
    links = "".join(f"<li><a href='/p/{i}'>Popular story number {i} of the week</a></li>" for i in range(6))
    return (
        "<html><head><title>Footbridge to be rebuilt</title></head><body><div class='wrap'>"
        f"<div class='sidebar'><h4>Trending now</h4><ol>{links}</ol>"
        "<div class='newsletter'>Sign up for our free newsletter. Enter your email address to subscribe.</div></div>"
        "<div class='post'><h2>Footbridge to be rebuilt</h2><div class='post-body'>"
        f"{paragraph_break.join(SHORT_STORY)}</div>"
        "<div class='share'>Share this article on Facebook Twitter LinkedIn Email</div></div></div>"
        "<div id='footer'>Copyright 2020 Example Media Group. All rights reserved. Use of this site constitutes "
        "acceptance of our User Agreement and Privacy Policy. Subscribe to our newsletter for the latest "
        "headlines delivered to your inbox every morning.</div></body></html>"
    )


@pytest.mark.parametrize("paragraph_break", ["<br><br>\n", "</p><p>"])
def test_sign_up_boxes_share_bars_and_legal_footers_stay_out_of_a_short_story(paragraph_break: str) -> None:
    (doc,), _ = extract_batch([html_doc(sidebar_page(paragraph_break))], ExtractConfig())
    for sentence in SHORT_STORY:
        assert sentence in doc.text
    for chrome in ("Sign up for our free newsletter", "Share this article", "All rights reserved"):
        assert chrome not in doc.text


HIDDEN = {
    "hidden attribute": "<p hidden>The mayor's private phone number was listed here by mistake last week.</p>",
    "inline display none": "<div style='color: red; display : none'>Please enable JavaScript to see comments.</div>",
    "inline visibility hidden": "<p style='visibility:hidden'>Loading the next story in your feed now.</p>",
    "aria-hidden": "<p aria-hidden='true'>Share on Facebook Share on Twitter Share by Email Print</p>",
}


@pytest.mark.parametrize("markup", ["<article>{}</article>", "<div class='post'>{}</div>"])
def test_text_a_browser_does_not_show_is_not_extracted(markup: str) -> None:
    story = "".join(f"<p>{p}</p>" + hidden for p, hidden in zip(PARAGRAPHS, HIDDEN.values(), strict=True))
    page = f"<html><head><title>{TITLE}</title></head><body>{markup.format(story)}</body></html>"
    (doc,), _ = extract_batch([html_doc(page)], ExtractConfig())
    for paragraph in PARAGRAPHS:
        assert paragraph in doc.text
    for kind, element in HIDDEN.items():
        assert element.split(">")[1].split("<")[0] not in doc.text, kind


def test_a_page_that_hides_almost_all_of_its_text_keeps_it() -> None:
    # Text revealed by a script (display:none until loaded) is the page's content when it is nearly all of it.
    story = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    page = ("<html><body><div class='post'><p>Breaking news</p>"
            f"<div style='display:none'>{story}</div></div></body></html>")
    (doc,), _ = extract_batch([html_doc(page)], ExtractConfig())
    assert all(paragraph in doc.text for paragraph in PARAGRAPHS)


def test_justext_paragraphs_are_justexts_own(corpora: Path) -> None:
    # siftlake makes justext's paragraphs without formatting the path of every empty one: the paragraphs
    # that come out (text, path, link and tag counts) must be exactly those justext makes.
    from justext.core import ParagraphMaker, preprocessor
    from trafilatura.utils import load_html

    from flows._extract_eval import decode_html, load_sample

    compared = 0
    for page in load_sample("cleaneval", 6, root=corpora) + load_sample("cleanportaleval", 4, root=corpora):
        html = decode_html(page.raw)
        theirs = ParagraphMaker.make_paragraphs(preprocessor(load_html(html)))
        ours = extract_html_module._ParagraphMaker.make_paragraphs(preprocessor(load_html(html)))
        assert [(p.text, p.dom_path, p.xpath, p.chars_count_in_links, p.tags_count) for p in ours] == [
            (p.text, p.dom_path, p.xpath, p.chars_count_in_links, p.tags_count) for p in theirs
        ]
        compared += len(theirs)
    assert compared > 100


def test_pages_queued_ahead_come_back_in_order_and_a_timeout_spares_the_others() -> None:
    titles = [f"Story number {i}" for i in range(6)]
    batch = [html_doc(article_page(t), doc_id=f"p{i}") for i, t in enumerate(titles)]
    batch.insert(3, html_doc(slow_page(), doc_id="slow"))
    started = start_extraction(batch, ExtractConfig(timeout_s=0.5))
    docs, rejects = finish_extraction(started)
    assert [(d.doc_id, d.title) for d in docs] == [(f"p{i}", t) for i, t in enumerate(titles)]
    assert [(r.unit_id, r.reason) for r in rejects] == [("slow", "extract_timeout")]


def test_answers_already_waiting_in_the_pipe_are_not_taken_for_timeouts() -> None:
    batch = [html_doc(article_page(f"Story {i}"), doc_id=f"p{i}") for i in range(30)]
    started = start_extraction(batch, ExtractConfig(timeout_s=0.5))
    time.sleep(3)  # every answer is written before the first is read
    docs, rejects = finish_extraction(started)
    assert not rejects
    assert [d.title for d in docs] == [f"Story {i}" for i in range(30)]


def test_pages_abandoned_by_a_failed_shard_do_not_answer_for_the_next_batch() -> None:
    start_extraction([html_doc(article_page("Abandoned story"), doc_id="old")], ExtractConfig())
    abandon_extraction()
    docs, _ = extract_batch([html_doc(article_page("Fresh story"), doc_id="new")], ExtractConfig())
    assert [(d.doc_id, d.title) for d in docs] == [("new", "Fresh story")]

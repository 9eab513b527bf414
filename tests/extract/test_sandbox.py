"""The extraction process: a per-page time limit, one child per thread, pages queued ahead in order."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time

import pytest

from flows.extract import ExtractConfig, abandon_extraction, extract_batch, finish_extraction, start_extraction
from flows.extract.options import HtmlOptions
from flows.extract.sandbox import for_thread
from tests.extract.pages import article_page, html_doc, slow_page


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


def test_a_child_that_dies_under_a_page_costs_the_page_nothing() -> None:
    """The system may end an extraction process (memory pressure, a stray signal): the page it was working on
    goes to a fresh child instead of becoming a reject."""
    box = for_thread()
    box.submit(slow_page(), HtmlOptions.of(ExtractConfig()))
    pid = box.pid
    assert pid is not None
    killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))  # while result() waits on the page
    killer.start()
    result = box.result(timeout_s=120)
    killer.join()
    assert "29999" in result.text  # the whole article, from the last paragraph
    assert box.pid not in (None, pid)

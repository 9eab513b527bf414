"""Text fidelity (issue 15): every word the source says, repaired, lands in the lake.

ftfy's own test cases (``../shared/corpora/ftfy_cases``) come out of ``normalize_text`` and out of the real
CLI as ``ftfy.fix_text`` fixes them; HTML fragments are pages (stray NULs: tests/read/test_decode.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import ftfy
import pytest

from flows.document import Document
from flows.extract import ExtractConfig, extract_batch
from flows.normalize import normalize_text

# What siftlake keeps differently from ftfy's defaults on purpose (README, Normalize): curly quotes, full-width
# forms and ligatures are kept; whitespace is laid out as paragraphs; control characters are removed.
_KEPT_DIFFERENTLY = ftfy.TextFixerConfig(fix_encoding=False, fix_c1_controls=False, unescape_html=False,
                                         uncurl_quotes=True, fix_character_width=True, fix_latin_ligatures=True)
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_WORD = re.compile(r"\w+")


def fold(text: str) -> str:
    return " ".join(_CONTROLS.sub("", ftfy.fix_text(text, _KEPT_DIFFERENTLY)).split())


def pass_cases(corpora: Path) -> list[dict[str, Any]]:
    folder = corpora / "ftfy_cases"
    cases = [case for name in ("synthetic.json", "negative.json")
             for case in json.loads((folder / name).read_text(encoding="utf-8"))]
    return [case for case in cases if case.get("expect") == "pass"]


def test_every_ftfy_pass_case_is_normalized_as_ftfy_fixes_it(corpora: Path) -> None:
    cases = pass_cases(corpora)
    assert len(cases) >= 60
    wrong = {case["label"]: (normalize_text(case["original"]), case["fixed"]) for case in cases
             if fold(normalize_text(case["original"])) != fold(case["fixed"])}
    assert not wrong, wrong


# -- HTML fragments ----------------------------------------------------------------------------------------------

_PARAGRAPH = ("The harbour authority published its yearly report on Monday, with the tonnage handled, the ships "
              "that called and the cost of dredging the channel. ")
FRAGMENTS = [f"<p>{_PARAGRAPH * 3}</p>", f"<div><h2>Report</h2><p>{_PARAGRAPH * 3}</p></div>",
             f"<p>{_PARAGRAPH}</p><p>{_PARAGRAPH}</p>", _PARAGRAPH * 3, f"<article><p>{_PARAGRAPH * 3}</p></article>"]


@pytest.mark.parametrize("fragment", FRAGMENTS)
def test_an_html_fragment_is_extracted_as_the_same_markup_inside_a_document(fragment: str) -> None:
    config = ExtractConfig(timeout_s=30)
    kept, rejects = extract_batch([Document("f", "f.jsonl#L1", fragment, "html")], config)
    whole, _ = extract_batch([Document("w", "w.jsonl#L1", f"<html><body>{fragment}</body></html>", "html")], config)
    assert not rejects, rejects
    assert kept[0].text == whole[0].text and _PARAGRAPH.strip()[:60] in kept[0].text


# -- the real CLI ------------------------------------------------------------------------------------------------


@pytest.mark.flow
def test_ftfy_cases_and_fragments_land_through_the_cli(corpora: Path, tmp_path: Path,
                                                       prefect_server: str) -> None:
    cases = pass_cases(corpora)
    lines = [json.dumps({"id": case["label"], "text": case["original"]}) for case in cases]
    lines += [json.dumps({"id": f"fragment-{n}", "html": fragment}) for n, fragment in enumerate(FRAGMENTS)]
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    lake = tmp_path / "lake"
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    result = subprocess.run([sys.executable, "-m", "flows.cli", "ingest", str(tmp_path / "source"), "--lake", str(lake),
                             "--json"], capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    texts = dict(duckdb.sql(f"select source_uri, text from read_parquet('{lake}/documents/**/*.parquet', "
                            "hive_partitioning=true)").fetchall())
    wrong = {}
    for number, case in enumerate(cases, start=1):
        if len(_WORD.findall(case["fixed"])) < 2:
            continue  # a symbol-only snippet may be rejected as having no main content
        text = texts.get(f"cases.jsonl#L{number}")
        if text is None or fold(text) != fold(case["fixed"]):
            wrong[case["label"]] = (text, case["fixed"])
    assert not wrong, wrong
    for number in range(len(cases) + 1, len(lines) + 1):
        assert _PARAGRAPH.strip()[:60] in texts[f"cases.jsonl#L{number}"]

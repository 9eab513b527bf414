"""JSONL inputs: one unit per line, a reject with its reason for every bad line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from flows.document import Document, Reject
from flows.read.jsonl import _jsonl_unit, _scrub
from tests.read.helpers import read_all


def test_jsonl_lines_are_units_and_bad_lines_are_rejects(tmp_path: Path) -> None:
    lines = [
        json.dumps({"text": "plain body", "id": "a1", "url": "https://example.org/a"}),
        json.dumps({"html": "<p>html body</p>"}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"title": "no body"}),
        json.dumps({"text": 42}),
        "",
        json.dumps({"text": "last", "url": 7}),
    ]
    (tmp_path / "dump.jsonl").write_text("\n".join(lines) + "\n")
    docs, rejects = read_all(tmp_path)
    assert [(d.source_uri, d.kind, d.url) for d in docs] == [
        ("dump.jsonl#L1", "text", "https://example.org/a"),
        ("dump.jsonl#L2", "html", None),
    ]
    assert {r.source_uri: r.reason for r in rejects} == {
        "dump.jsonl#L3": "jsonl_invalid_json",
        "dump.jsonl#L4": "jsonl_not_object",
        "dump.jsonl#L5": "jsonl_missing_text",
        "dump.jsonl#L6": "jsonl_bad_field",
        "dump.jsonl#L8": "jsonl_bad_field",
    }
    assert all(r.detail and r.stage == "read" for r in rejects)


_ANY_CHARACTER = st.characters(exclude_categories=())  # surrogates too: JSON may escape them, "\ud800"
_TEXT = st.text(_ANY_CHARACTER)
# Numbers orjson refuses (NaN, infinities) or reads otherwise (integers past 64 bits: floats).
_FIELD = st.one_of(_TEXT, _TEXT, st.none(), st.integers(-(2**80), 2**80), st.floats())


@given(record=st.fixed_dictionaries({"text": _TEXT}, optional={"id": _FIELD, "url": _FIELD, "title": _FIELD}),
       ascii_only=st.booleans())
@example(record={"text": "a\ud800 b \udfff", "url": "/\udc80", "title": "\ud83d\ude00"}, ascii_only=True)
@example(record={"text": "a\ud800 b \udfff", "url": "/\udc80", "title": "t"}, ascii_only=False)
@example(record={"text": "x", "id": 2**70, "title": float("nan")}, ascii_only=True)
def test_a_line_reads_as_json_reads_it_with_lone_surrogates_replaced(record: dict[str, Any], ascii_only: bool) -> None:
    # The reader parses with orjson where it can and json where orjson refuses: either way a unit is what
    # json.loads reads, its lone surrogates (which UTF-8 cannot hold) replaced with U+FFFD.
    line = json.dumps(record, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    unit = _jsonl_unit("dump.jsonl#L1", line)
    expected = json.loads(line)
    if any(not isinstance(value, str | None) for value in expected.values()):
        assert isinstance(unit, Reject) and unit.reason == "jsonl_bad_field"
        return
    assert isinstance(unit, Document)
    scrubbed = {key: value and _scrub(value) for key, value in expected.items()}
    assert (unit.text, unit.url, unit.title) == (scrubbed["text"], scrubbed.get("url"), scrubbed.get("title"))
    assert unit.meta.get("input_id") == expected.get("id")
    for value in (unit.text, unit.url or "", unit.title or ""):
        value.encode("utf-8")  # a lone surrogate left in would raise here

"""JSONL inputs: one unit per line, a reject with its reason for every bad line."""

from __future__ import annotations

import json
from pathlib import Path

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

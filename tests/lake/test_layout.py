"""The lake's schemas."""

from __future__ import annotations

import pyarrow as pa

from flows import lake as lakefs


def test_documents_schema_has_every_contract_column() -> None:
    names = set(lakefs.documents_schema(["q_example"]).names)
    contract = {"doc_id", "source_uri", "url", "title", "text", "lang", "content_hash", "dup_cluster",
                "is_duplicate", "quality_score", "run_id"}
    assert contract <= names and "q_example" in names
    assert lakefs.documents_schema([]).field("is_duplicate").type == pa.bool_()

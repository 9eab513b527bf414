"""Helpers shared by the read tests."""

from __future__ import annotations

from pathlib import Path

from flows.document import Document, Reject
from flows.read import ReadConfig, discover, read_shard


def read_all(source: Path | str, config: ReadConfig | None = None) -> tuple[list[Document], list[Reject]]:
    """Every unit under ``source`` as one shard: the documents, and the rejects of reading and of listing."""
    found = discover(str(source))
    docs, rejects = read_shard(found.files, config or ReadConfig())
    return docs, rejects + found.rejects

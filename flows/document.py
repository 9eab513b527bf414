"""The two values every stage speaks: a ``Document`` and a ``Reject``.

A stage takes a batch of documents and returns the documents it keeps plus a ``Reject`` for
each one it could not handle, so nothing is dropped without a reason (datatrove's model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["text", "html"]


@dataclass(slots=True)
class Document:
    """One input unit on its way through the stages; stages update it in place."""

    doc_id: str
    """Stable id: a hash of the unit's source_uri and raw bytes."""
    source_uri: str
    """Path relative to SOURCE (posix); ``path#L<n>`` for JSONL line n; ``path#<offset>`` for WARC."""
    text: str
    """The unit's text: raw decoded content, then normalized, then the extracted main text."""
    kind: Kind
    """``html`` goes through trafilatura; ``text`` through the plain-text chrome filter."""
    url: str | None = None
    title: str | None = None
    lang: str | None = None
    lang_score: float | None = None
    content_hash: str = ""
    signals: dict[str, float] = field(default_factory=dict)
    """Quality signals, ``q_*`` name to value."""
    quality_score: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    """Stage-private extras (for example raw byte size); not written to the lake."""


@dataclass(frozen=True, slots=True)
class Reject:
    """An input unit that could not become a document, with a machine code and a sentence."""

    unit_id: str
    """Same derivation as ``Document.doc_id`` (empty when the bytes could not be read)."""
    source_uri: str
    stage: str
    reason: str
    detail: str


def reject(doc: Document, stage: str, reason: str, detail: str) -> Reject:
    """Turn a document that failed ``stage`` into a ``Reject``."""
    return Reject(doc.doc_id, doc.source_uri, stage, reason, detail)

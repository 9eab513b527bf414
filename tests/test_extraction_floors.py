"""Extraction quality may not regress: per-gold-set F1 floors on a small fixed dev sample.

Ten pages spread over each gold set's dev split (``load_sample``), scored as bench/extraction.py
scores the full sets. Floors are the scores measured when they were set minus about 0.01, so
noise from a dependency's patch release passes and a real regression fails. Raise a floor when
extraction gets better; never lower one to make a change pass. Full numbers: bench/extraction.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flows._extract_eval import GOLD_SETS, decode_html, load_sample, score_set
from flows.document import Document
from flows.extract import ExtractConfig, extract_batch
from flows.normalize import normalize_chars
from flows.read import DecodeError, decode_bytes

SAMPLE_SIZE = 10
# Measured on the sample (siftlake / stock trafilatura 2.3.1 default):
# scrapinghub 0.967/0.967, mozilla 0.984/0.899, cleaneval 0.938/0.938,
# cleanportaleval 0.970/0.970, trafilatura_eval 0.929/0.912.
FLOORS = {
    "scrapinghub_aeb": 0.955,
    "mozilla_readability": 0.975,
    "cleaneval": 0.935,
    "cleanportaleval": 0.96,
    "trafilatura_eval": 0.915,
}


def _decode(raw: bytes) -> str:
    try:
        return normalize_chars(decode_bytes(raw, is_html=True))
    except DecodeError:
        return normalize_chars(decode_html(raw))


@pytest.mark.parametrize("name", GOLD_SETS)
def test_f1_stays_above_its_floor(corpora: Path, name: str) -> None:
    pages = load_sample(name, SAMPLE_SIZE, root=corpora)
    docs = [Document(doc_id=p.page_id, source_uri=p.page_id, text=_decode(p.raw), kind="html") for p in pages]
    kept, _ = extract_batch(docs, ExtractConfig())
    texts = {d.doc_id: d.text for d in kept}
    _, _, f1 = score_set(pages, [texts.get(p.page_id, "") for p in pages])
    assert f1 >= FLOORS[name], f"{name}: F1 {f1:.4f} fell below its floor {FLOORS[name]}"

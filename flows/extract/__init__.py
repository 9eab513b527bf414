"""Main text out of HTML (trafilatura, in a sandboxed process) and chrome lines out of plain text."""

from flows.extract.chrome import headline, strip_chrome
from flows.extract.options import HtmlOptions
from flows.extract.sandbox import prestart
from flows.extract.stage import (
    STAGE,
    ExtractConfig,
    StartedExtraction,
    abandon_extraction,
    extract_batch,
    finish_extraction,
    start_extraction,
)

__all__ = [
    "STAGE",
    "ExtractConfig",
    "HtmlOptions",
    "StartedExtraction",
    "abandon_extraction",
    "extract_batch",
    "finish_extraction",
    "headline",
    "prestart",
    "start_extraction",
    "strip_chrome",
]

"""Taking content down: ``siftlake forget`` (README: Taking content down).

``flows.forget.job.forget(ForgetOptions(...))`` removes the documents a list of URLs, domains or doc_ids
matches (and, asked, their copies) from the documents table and the dedup index in one commit, and keeps
the list blocked; ``Blocklist`` is what a run checks its units against (reject reason ``taken_down``).
The CLI half (``add_parser``, ``main``) is light to import; the rest loads on first use.
"""

from typing import TYPE_CHECKING

from flows.forget.command import add_parser, main
from flows.forget.lists import ForgetError, ForgetUsageError
from flows.lazy import lazy_attributes

if TYPE_CHECKING:
    from flows.forget.blocklist import TAKEN_DOWN, Blocklist
    from flows.forget.job import FAULT_POINTS, ForgetOptions, forget

_LAZY = {"TAKEN_DOWN": "blocklist", "Blocklist": "blocklist", "FAULT_POINTS": "job", "ForgetOptions": "job",
         "forget": "job"}

__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "FAULT_POINTS",
    "TAKEN_DOWN",
    "Blocklist",
    "ForgetError",
    "ForgetOptions",
    "ForgetUsageError",
    "add_parser",
    "forget",
    "main",
]

"""Run reports and the lake report.

``flows.report.summary``: a run's counts, its Prefect artifact contents and progress lines.
``flows.report.queries``: duckdb SQL over the lake's Parquet; ``flows.report.charts``: matplotlib SVG charts;
``flows.report.page``: the self-contained HTML page (``siftlake report``).
"""

from typing import TYPE_CHECKING

from flows.lazy import lazy_attributes
from flows.report.summary import STAGES, count_rows, print_progress, run_counts, run_markdown

if TYPE_CHECKING:
    from flows.report.build import report_key, summary_markdown, write_report, write_run_report
    from flows.report.queries import LakeNotFoundError, UnknownRunError

# The page builder needs matplotlib and duckdb (~1.5 s of imports): imported when first used, so that a run
# does not pay for it at start-up (the flow imports it in the background while shards run).
_PAGE_API = {"report_key": "build", "summary_markdown": "build", "write_report": "build",
             "write_run_report": "build", "LakeNotFoundError": "queries", "UnknownRunError": "queries"}

__getattr__ = lazy_attributes(__name__, _PAGE_API)


__all__ = [
    "STAGES",
    "LakeNotFoundError",
    "UnknownRunError",
    "count_rows",
    "print_progress",
    "report_key",
    "run_counts",
    "run_markdown",
    "summary_markdown",
    "write_report",
    "write_run_report",
]

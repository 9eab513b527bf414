"""Run reports and the lake report.

``flows.report.summary``: a run's counts, its Prefect artifact contents and progress lines.
``flows.report.queries``: duckdb SQL over the lake's Parquet; ``flows.report.charts``: matplotlib SVG charts;
``flows.report.page``: the self-contained HTML page (``siftlake report``).
"""

from flows.report.build import report_key, summary_markdown, write_report, write_run_report
from flows.report.queries import LakeNotFoundError, UnknownRunError
from flows.report.summary import STAGES, count_rows, print_progress, run_counts, run_markdown

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

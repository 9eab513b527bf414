"""Run reports and the lake report.

``flows.report.summary``: a run's counts, its Prefect artifact contents and progress lines.
``flows.report.queries``: duckdb SQL over the lake's Parquet; ``flows.report.charts``: matplotlib SVG charts;
``flows.report.page``: the self-contained HTML page (``siftlake report``).
"""

from flows.report.summary import STAGES, count_rows, plan_key, print_progress, run_counts, run_markdown

__all__ = ["STAGES", "count_rows", "plan_key", "print_progress", "run_counts", "run_markdown"]

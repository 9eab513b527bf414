"""Export a training set from the lake: ``siftlake export`` (README: Exporting a training set).

``flows.export.job.export(ExportOptions(...))`` does the work and returns the manifest; this package's
top level stays light (no duckdb) so that the CLI imports it for every command at no cost.
"""

from flows.export.command import add_parser, main
from flows.export.options import ExportError, ExportOptions, ExportUsageError, parse_size

__all__ = ["ExportError", "ExportOptions", "ExportUsageError", "add_parser", "main", "parse_size"]

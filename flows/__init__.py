"""siftlake: a document-ingestion ETL for text corpora.

The pure core lives in this package, one module per stage (read, normalize, extract,
language, dedup, quality, lake); none of it imports Prefect. ``flows.ingest`` wraps it in a
Prefect flow and ``flows.cli`` is the ``siftlake`` command.
"""

__version__ = "0.1.0"

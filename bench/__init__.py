"""Benchmarks: extraction F1, dedup P/R, quality AUC, language, read and end-to-end (``python -m bench.<name>``)."""

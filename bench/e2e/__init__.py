"""End-to-end benchmark (``python -m bench.e2e``): siftlake against datatrove and extraction alone, one corpus."""

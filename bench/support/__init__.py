"""What the benchmarks share, one module a job; imported from the modules, so a bench loads only what it uses.

``paths``: the repository, the dev corpora (``$SIFTLAKE_CORPORA``) and the cache (``$SIFTLAKE_CACHE``);
``gold``: the extraction gold sets, loaded, decoded and scored; ``meters``: CPU seconds, peak RSS of a
process or of a command's process tree, and a local S3 server.
"""

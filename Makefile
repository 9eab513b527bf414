# Every target sets up the virtual environment first, from nothing on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
LAKE ?= lake

.PHONY: install run test lint bench bench-extraction bench-dedup bench-quality bench-e2e clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,dask,cloud]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/siftlake ingest seeds --lake $(LAKE)

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check flows tests bench tools
	$(VENV)/bin/mypy

bench-extraction: install
	$(PY) -m bench.extraction

bench-dedup: install
	$(PY) -m bench.dedup

bench-quality: install
	$(PY) -m bench.quality

bench-e2e: install
	$(PY) -m bench.e2e

bench: bench-extraction bench-dedup bench-quality

clean:
	rm -rf $(LAKE) .pytest_cache .mypy_cache .ruff_cache

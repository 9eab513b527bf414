# Every target sets up the virtual environment first, from nothing on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
LAKE ?= lake

.PHONY: install chromium run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,dask,cloud]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The report's browser test drives Debian's Chromium (Playwright's own download is not used).
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update && apt-get install -y chromium); } \
	  || echo "make: chromium is missing and could not be installed here (needs root): run 'sudo apt-get install -y chromium'; the report's browser test fails without it"

# Azure Blob's emulator for the conformance suite (Cloud Storage's comes as a wheel in the dev extra): Azurite
# from npm into .azurite/ (git-ignored); Node and npm from the system's packages when they are missing.
AZURITE := .azurite/node_modules/.bin/azurite-blob
$(AZURITE):
	@{ command -v node >/dev/null && command -v npm >/dev/null; } || { [ "$$(id -u)" = 0 ] && apt-get update \
	  && apt-get install -y nodejs npm; } || { echo "make: node and npm are missing and could not be installed \
	  here (needs root): run 'sudo apt-get install -y nodejs npm'; the Azure Blob tests fail without Azurite"; exit 1; }
	mkdir -p .azurite && npm install --prefix .azurite --silent --no-audit --no-fund azurite@3

install: $(STAMP) chromium $(AZURITE)

# The ingest needs only the Python packages; Chromium and Azurite serve the tests.
run: $(STAMP)
	$(VENV)/bin/siftlake ingest seeds --lake $(LAKE)

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check flows tests bench tools
	$(VENV)/bin/mypy

# bench-extraction, bench-dedup, bench-quality, bench-e2e, bench-report, bench-export, ...: python -m bench.<name>
bench-%: install
	$(PY) -m bench.$*

bench: bench-extraction bench-dedup bench-quality

clean:
	rm -rf $(LAKE) .pytest_cache .mypy_cache .ruff_cache

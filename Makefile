# Two entry points for a fresh machine (see README.md):
#   make tour   creates .venv if missing, installs sparseopt, runs `python -m sparseopt`
#   make test   creates .venv if missing, installs sparseopt[test], runs ruff and the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sparseopt-installed

.PHONY: tour test lint bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

tour: $(STAMP)
	$(PY) -m sparseopt

test: $(STAMP)
	$(PY) -m ruff check sparseopt tests asv_benchmarks
	$(PY) -m pytest -n 2 --dist loadfile -q

lint: $(STAMP)
	$(PY) -m ruff check sparseopt tests asv_benchmarks

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	cd asv_benchmarks && ../$(PY) -m asv machine --yes && ../$(PY) -m asv run --python=same --quick

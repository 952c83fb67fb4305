# Quick start: `make demo` runs the demo on built-in synthetic data; `make test`
# runs the tests. Both create the virtualenv and install the project first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPEC ?= search_spaces/demo.yaml

.PHONY: install demo test test-fast lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# --resume: a second `make demo` continues (or just reports) the first one's sweep.
demo: install
	$(BIN)/sweeper run $(SPEC) --resume
	$(BIN)/sweeper report demo

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not integration and not gpu"

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# evidock: `make demo` runs the main job, `make test` runs every test tier.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint bench clean setup setup-test

$(BIN)/evidock: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

setup: $(BIN)/evidock
	scripts/system-deps.sh run

setup-test: $(BIN)/evidock
	scripts/system-deps.sh test

demo: setup
	$(BIN)/evidock demo

lint: setup-test
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: setup-test
	$(BIN)/python bench/ingest_bench.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache

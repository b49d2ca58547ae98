# evidock: `make demo` runs the main job, `make test` runs every test tier.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint bench clean venv

# The virtual environment, rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

demo:
	scripts/system-deps.sh run
	$(MAKE) --no-print-directory venv
	$(BIN)/evidock demo

lint:
	scripts/system-deps.sh test
	$(MAKE) --no-print-directory venv
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench:
	scripts/system-deps.sh test
	$(MAKE) --no-print-directory venv
	$(BIN)/python bench/ingest_bench.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache

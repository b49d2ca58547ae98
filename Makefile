# evidock: `make demo` runs the main job, `make test` runs every test tier.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint bench clean install uninstall

# The virtual environment with evidock (runtime) and, for tests, the test tools;
# each rebuilt when pyproject.toml changes.
$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.test: $(VENV)/.runtime
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

demo:
	scripts/system-deps.sh run
	$(MAKE) --no-print-directory $(VENV)/.runtime
	$(BIN)/evidock demo

lint:
	scripts/system-deps.sh test
	$(MAKE) --no-print-directory $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/mypy

# Every tier on SQLite, then the catalog, ledger and CLI suites again with the catalog on
# a PostgreSQL server the tests start (a site's catalog).
PG_SUITES = $(addprefix tests/integration/test_,$(addsuffix .py,cli ledger ingest registry spool offline \
	cases retention explain export device_custody notify deadlines gaps pipeline sidecars report groups))

test: lint
	$(BIN)/pytest
	$(BIN)/pytest --catalog=postgres -m "not torture" $(PG_SUITES)

# Every benchmark, one after the other: one table, one JSON in bench/results/ (bench/suite.py).
bench:
	scripts/system-deps.sh test
	$(MAKE) --no-print-directory $(VENV)/.test
	$(BIN)/python bench/suite.py

# A docking station (as root): evidock in /opt/evidock, the service, its user and groups.
install:
	scripts/install.sh

uninstall:
	scripts/uninstall.sh

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache

# The two commands of the README: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install bench docs clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/gortms serve

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# The side-by-side benchmark (bench/compare.py); needs Debian's wrk and redis-server.
bench: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python bench/compare.py $(ARGS)

# docs/CONFIG.md's table of settings, from the KEYS table (a test fails when they differ).
docs: $(BIN)/.installed
	$(BIN)/python -m gortms.config docs/CONFIG.md

clean:
	rm -rf $(VENV) build *.egg-info

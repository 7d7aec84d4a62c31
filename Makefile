# `make run` and `make test` are all a new user needs; both build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint format demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: poll the shipped config/feeds.yaml into data/monitor.db until Ctrl-C
run: $(STAMP)
	$(BIN)/monitor run

## demo: the offline demonstration
demo: $(STAMP)
	$(BIN)/monitor demo

## test: lint, type-check, then the whole suite (SQLite and PostgreSQL)
test: lint
	$(BIN)/pytest

## test-fast: skip the slow end-to-end tests
test-fast: $(STAMP)
	$(BIN)/pytest -m 'not slow'

## bench: the whole benchmark suite, one script at a time (about an hour), its table into bench/README.md;
## BENCH_ARGS='--quick --no-readme' for a smoke run, BENCH_ARGS='--only poll,claim' for some (see bench/README.md)
bench: $(STAMP)
	$(BIN)/python bench/run_suite.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

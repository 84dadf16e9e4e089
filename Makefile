# lark-operator — make help lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEV_DIR ?= .lark-dev
IMG ?= lark-operator:dev
KIND_CLUSTER ?= lark
PYTEST_ARGS ?=

.PHONY: help venv controlplane test test-unit test-integration e2e lint fmt demo bench docs \
        dev-up dev-down run docker-build kind-up kind-load deploy clean

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# The product (editable, with its test/lint tools) and, beside it, the dev-only lark-devenv
# from hack/devenv: the local control plane and server launchers that `lark-operator dev`,
# the demo, the benchmark and the tests use, and that the wheel and the image leave out.
$(BIN)/lark-operator: pyproject.toml hack/devenv/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -e hack/devenv
	@touch $@

venv: $(BIN)/lark-operator ## Create .venv with the project, the dev tooling and the test/lint tools

controlplane: ## Build kube-apiserver, etcd, helm (and the e2e node's binaries) into ~/.cache/lark-operator (once)
	@bash hack/controlplane/build.sh

test: venv controlplane ## Run every test: unit, integration (real apiserver and servers), e2e
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: venv ## Unit tests only
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: venv controlplane ## Integration tests only
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

e2e: venv controlplane ## The image from the Dockerfile, the chart on a real node (root; docs/e2e.md)
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

lint: venv ## ruff check, ruff format --check, mypy, import-linter (the layers in pyproject.toml)
	$(BIN)/ruff check operator tests bench hack
	$(BIN)/ruff format --check operator tests bench hack
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: venv ## Format the code
	$(BIN)/ruff format operator tests bench hack
	$(BIN)/ruff check --fix operator tests bench hack

dev-up: venv controlplane ## Start the local control plane (etcd + kube-apiserver) in $(DEV_DIR)
	$(BIN)/lark-operator dev up --dir $(DEV_DIR)

dev-down: venv ## Stop the local control plane
	$(BIN)/lark-operator dev down --dir $(DEV_DIR)

demo: venv controlplane ## The whole thing on a laptop: control plane, emulator, sample LarkApps, operator
	$(BIN)/python hack/demo.py --dir $(DEV_DIR)

bench: venv controlplane ## Scale benchmark (N = 100, 1000, 5000, 10000) against the local control plane
	$(BIN)/python bench/run.py

docs: venv ## Regenerate docs/crd-reference.md from the CRD
	$(BIN)/python hack/gen_crd_reference.py > docs/crd-reference.md

docker-build: ## Build the operator image (needs a Docker engine)
	docker build -t $(IMG) .

kind-up: ## Create a kind cluster from kind-config.yaml (needs Docker)
	kind create cluster --name $(KIND_CLUSTER) --config kind-config.yaml

kind-load: ## Load the image into the kind cluster
	kind load docker-image $(IMG) --name $(KIND_CLUSTER)

deploy: ## Install the chart into the current cluster with the dev image
	helm upgrade --install lark-operator charts/lark-operator -n lark-system --create-namespace \
	  --set image.repository=$(firstword $(subst :, ,$(IMG))) --set image.tag=$(lastword $(subst :, ,$(IMG))) \
	  --set image.pullPolicy=IfNotPresent

clean: ## Remove the venv and local state (not the binary cache)
	rm -rf $(VENV) $(DEV_DIR) .pytest_cache .mypy_cache .ruff_cache

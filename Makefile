# kubelb developer entry points. Every target sets up what it needs (venv, packages, Envoy, test
# binaries) so that it works on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONTROLPLANE_BUILD := hack/controlplane/build.sh
HELM_BUILD := hack/helm/build.sh

.PHONY: help venv demo test test-fast lint format golden crds charts gateway-api-crds prometheus-operator-crds cert-manager-crds controlplane helm cluster bench chaos clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo ">> creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo ">> installing kubelb with extras [envoy,test,dev]"
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[envoy,test,dev]'
	@touch $@

venv: $(STAMP) ## Create .venv and install kubelb with its extras

demo: $(STAMP) ## Run standalone mode with configs/demo/ and show traffic through a real Envoy
	$(BIN)/python -m kubelb.demo $(DEMO_ARGS)

controlplane: ## Build (or reuse) kube-apiserver, kube-controller-manager and etcd for tests
	@bash $(CONTROLPLANE_BUILD)

helm: ## Build (or reuse) helm from the helm.sh/helm/v4 module pinned in hack/helm
	@bash $(HELM_BUILD) >/dev/null

lint: $(STAMP) ## ruff, mypy and import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP) ## Format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-fast: $(STAMP) ## Unit and golden tests only
	$(BIN)/pytest tests/unit tests/golden -q

# Two workers: the suite mostly waits on real processes. Each takes whole files or groups of files
# (tests/conftest.py), in collection order. TEST_WORKERS=0 runs the suite in this process.
TEST_WORKERS ?= 2

test: $(STAMP) controlplane helm lint ## Everything CI proves: lint, unit, golden, integration, e2e
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

golden: $(STAMP) ## Rewrite golden outputs after an intended change
	$(BIN)/pytest tests/golden --update-golden -q

crds: $(STAMP) ## Regenerate configs/crd/ from the API models
	$(BIN)/kubelb crds --output-dir configs/crd
	@$(MAKE) --no-print-directory charts

charts: helm ## Copy configs/crd/ into the charts' crds/ and render configs/deploy/ from the charts
	@bash hack/charts/sync.sh

gateway-api-crds: ## Regenerate configs/crds/gateway-api/ from the module pinned in hack/gateway-api
	@bash hack/gateway-api/crds.sh

prometheus-operator-crds: ## Regenerate configs/crds/prometheus-operator/ from the types pinned in hack/prometheus-operator
	@bash hack/prometheus-operator/crds.sh

cert-manager-crds: ## Regenerate configs/crds/cert-manager/ from the module pinned in hack/cert-manager
	@bash hack/cert-manager/crds.sh

cluster: $(STAMP) controlplane ## Run management and tenant API servers (kubeconfigs in .kubelb-dev/)
	$(BIN)/kubelb dev-cluster --dir .kubelb-dev

bench: $(STAMP) ## Data-plane and control-plane benchmarks (results in bench/results/)
	$(BIN)/pip install --quiet -e '.[bench]'
	@bash hack/bench-tools.sh
	$(BIN)/python -m bench $(BENCH_ARGS)

chaos: $(STAMP) controlplane ## Faults and hostile inputs on real parts; prints figures (bench/results/chaos.json)
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

clean: ## Remove the venv and caches (not the control-plane binaries)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .kubelb-state

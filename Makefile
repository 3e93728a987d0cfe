# Shoal: the targets every operator user already knows.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python

.PHONY: help setup tools lint test test-rust test-unit test-integration crds dashboards docs up down status env demo clean bench-schedule bench-coldstart images chaos

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## install Debian packages, the Python venv and the Kubernetes tools (idempotent)
	@hack/setup.sh

tools: ## build kube-apiserver, etcd, kwok, helm, oras from the Go module proxy (cached in ~/.cache/shoal)
	@hack/build-tools.sh

# cargo shares the release build that setup made (same profile, target dir outside the clone).
CARGO := CARGO_TARGET_DIR=$${SHOAL_CACHE:-$$HOME/.cache/shoal}/cargo PYO3_PYTHON=$(CURDIR)/.venv/bin/python cargo
CRATE := --manifest-path node-agent/dataplane/Cargo.toml
PYLIBDIR = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')

# deptry over what ships (api, oci, operator, node-agent, cli: their imports are exactly `dependencies`),
# then over the dev kit and tests (anything they import is declared, in `dependencies` or the dev extra).
DEV_FIRST_PARTY := $(foreach m,shoal_api shoal_oci shoal_operator shoal_agent shoal_cli shoal_dataplane \
	localcluster harness bench chaos dashboards gen_crds gen_docs gen_dashboards demo_realnode tests,-kf $(m))

lint: setup ## ruff, mypy, dependency and import-layer checks, cargo fmt and clippy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	.venv/bin/deptry api oci operator node-agent cli
	.venv/bin/deptry hack tests $(DEV_FIRST_PARTY) --ignore DEP002,DEP004 \
		--exclude '\.venv|hack/tools|hack/examples/.*-component-py|hack/examples/spin-.*-py'
	.venv/bin/lint-imports
	$(CARGO) fmt $(CRATE) --check
	$(CARGO) clippy --release --locked $(CRATE) --all-targets -- -D warnings

test-rust: setup ## the data plane's Rust unit tests
	LD_LIBRARY_PATH=$(PYLIBDIR) $(CARGO) test --release --locked $(CRATE)

crds: setup ## regenerate crds/ and charts/shoal/crds/ from the pydantic models
	$(PY) hack/gen_crds.py

docs: setup ## regenerate docs/wasmapp-reference.md and docs/metrics.md from the models and metric classes
	$(PY) hack/gen_docs.py

dashboards: setup ## regenerate the Grafana dashboards and the PrometheusRule from hack/dashboards
	$(PY) hack/gen_dashboards.py

bench-schedule: setup ## 1,000 WasmApps vs 1,000 Deployments over 200 kwok Nodes; core decision time; 10,000 apps over 1,000 Nodes (SCALE=0 skips it)
	$(PY) hack/bench/schedule.py $(if $(filter 0,$(SCALE)),,--scale-probe)

bench-coldstart: setup ## runc vs a request through the agent; HTTP req/s vs aiohttp; memory per app; noisy neighbour; memory budget
	$(PY) hack/bench/coldstart.py

chaos: setup ## break Shoal under load (agent crash, rolling update, operator kills, apiserver restart, 10-min soak ...): figures and a table
	$(PY) -m chaos

# Three pytest sessions, each with its own control plane: the e2e tests run real agents, an operator and
# extra Nodes that must not meet the integration tests' simulated agents and operator, and the chaos
# suite kills and restarts processes that no other test may share.
test: setup lint test-rust ## lint, then every test (Rust, unit, integration, e2e, short chaos)
	$(PY) -m pytest tests/unit tests/integration
	$(PY) -m pytest tests/e2e
	$(PY) -m pytest tests/chaos

test-unit: setup ## only the tests that need no servers
	$(PY) -m pytest -m unit

test-integration: setup ## only tests against real servers
	$(PY) -m pytest tests/integration
	$(PY) -m pytest tests/e2e

# REAL_NODES=1 adds a real kubelet Node (containerd, kube-proxy, a CNI bridge) next to the kwok ones.
REAL_NODES ?= 0
export REAL_NODES

up: setup ## start a local control plane (3 kwok Nodes) and an OCI registry; prints KUBECONFIG= and REGISTRY= (REAL_NODES=1: and a kubelet Node)
	@$(PY) -m localcluster up --real-nodes=$(REAL_NODES)

images: setup ## build the operator and agent images with podman, offline (mmdebstrap bases cached in ~/.cache/shoal)
	@$(PY) -m localcluster.images

down: ## stop everything `make up` started
	@if [ -x $(PY) ]; then $(PY) -m localcluster down; fi

status: ## what `make up` started, and whether it still runs
	@$(PY) -m localcluster status

env: ## shell lines for the local cluster: eval "$(make env)" sets KUBECONFIG and puts kubectl, helm, shoal on PATH
	@$(PY) -m localcluster env

demo: setup ## bring up a local cluster with Shoal and run the demo (REAL_NODES=1: the chart's images on a real kubelet Node)
	@$(PY) hack/demo.py

clean: down ## remove local build outputs (the tool cache in ~/.cache/shoal stays)
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache

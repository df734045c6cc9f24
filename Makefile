# Shop — common tasks. `make run` and `make test` bring up PostgreSQL,
# RabbitMQ and Redis first (installing them with apt when missing).
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
# Where `make docker` tags the images: $(IMAGE_REGISTRY)/shop-<service>:$(IMAGE_TAG)
IMAGE_REGISTRY ?= ghcr.io/shop
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' helm/shop/Chart.yaml)
SERVICES := auth-svc catalog-svc order-svc

.PHONY: help setup run test ha-test fuzz contracts contracts-lint lint fmt bench helm-lint docker-lint docker

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## Install (if missing) and start PostgreSQL, RabbitMQ and Redis; create the role and databases
	scripts/dev-stack.sh

run: setup ## Build, migrate and run every service locally (Ctrl-C stops them)
	scripts/run-local.sh

test: setup ## The whole test suite against real PostgreSQL, RabbitMQ and Redis
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

ha-test: setup ## Two replicas of everything under load across a RabbitMQ and a PostgreSQL restart, and a broker memory alarm (disturbs anything else using them)
	$(CARGO) nextest run --workspace --run-ignored only -E 'test(/^ha_/)' --test-threads 1

contracts: ## Regenerate docs/openapi.json and docs/asyncapi.yaml from the code (a test fails when they are stale)
	$(CARGO) run -q -p e2e --bin contracts

contracts-lint: ## Spectral on docs/openapi.json, the AsyncAPI CLI on docs/asyncapi.yaml (installs them into .tools/)
	scripts/contracts-lint.sh

fuzz: setup ## schemathesis (every check) against each service's /openapi.json; fails on any 5xx, schema mismatch or undocumented status
	scripts/fuzz.sh

bench: setup ## Shop against the PostgreSQL saga bound and reads against /healthz (release build; writes target/bench/report.md)
	scripts/bench.sh

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

helm-lint: ## Lint the Helm chart and validate every rendered manifest (installs its tools into .tools/)
	scripts/helm-lint.sh

docker-lint: ## hadolint the Dockerfile (installs hadolint into .tools/)
	scripts/tools.sh
	.tools/bin/hadolint Dockerfile

docker: ## Build the three service images (needs a Docker engine)
	@for service in $(SERVICES); do \
		docker build --build-arg SERVICE=$$service -t $(IMAGE_REGISTRY)/shop-$$service:$(IMAGE_TAG) . || exit 1; \
	done

# Every task a person runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := uv
export UV_LINK_MODE ?= copy

# Benchmarks need the infrastructure: make infra-up first.
.PHONY: accept-path bench bench-orders bench-chain bench-floor bench-publish test-faults help install lint format test test-unit fuzz up down status demo infra-up infra-down infra-status asyncapi k8s-validate images test-images sbom screenshots

help: ## List the tasks
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

install: ## Install every service and shared/ from the workspace lock
	@bash scripts/ensure-uv.sh
	@$(UV) sync --frozen --all-packages --quiet

lint: install ## ruff, mypy --strict, import rules
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy -p juniper_shared -p orders -p payments -p notifications -p invoicing -p juniper_ops -p console -p card_sandbox -p juniper_testkit
	$(UV) run --frozen lint-imports

format: install ## Apply ruff's fixes and formatting
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

test: install ## Start Kafka + FerretDB on PostgreSQL, run all tests, stop what was started
	@bash scripts/test.sh

test-faults: install ## Kill/restart every service and a private Kafka under a stream of orders; nothing lost or doubled (stops within 8 min)
	@timeout --signal=INT --kill-after=30 480 bash scripts/test.sh tests/faults/producer_deadline_suite.py tests/faults/fault_suite.py -s

fuzz: install ## Deeper fuzzing (HTTP, messages, limits, tenancy) on Kafka + FerretDB; FUZZ_EXAMPLES=200 by default
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} bash scripts/test.sh tests/fuzz tests/tenancy

test-unit: install ## Fast tests with no infrastructure
	$(UV) run --frozen pytest -m "not integration"

up: install ## Start infrastructure and every service in the background; prints where to look
	@bash scripts/stack.sh up

down: ## Stop the services and the infrastructure that `make up` started
	@bash scripts/stack.sh down

status: ## What runs
	@bash scripts/stack.sh status

demo: install ## Walk the help article's flows against the stack `make up` started (prints each step)
	@$(UV) run --frozen python scripts/demo.py
	@echo "Seller console: http://127.0.0.1:8000 (click the same flows: sign in as juniper-pottery or harbour-goods)"

screenshots: install ## Run the console's browser suite and keep a screenshot of each screen in docs/console/
	JM_CONSOLE_SCREENSHOTS=docs/console bash scripts/test.sh tests/e2e/browser

infra-up: install ## Start Kafka, PostgreSQL, FerretDB and Mailpit (built/downloaded once, cached)
	@bash deploy/local/infra.sh up

infra-down: ## Stop the local infrastructure
	@bash deploy/local/infra.sh down

infra-status: ## Show what runs
	@bash deploy/local/infra.sh status

images: ## Build every image with podman from ./Dockerfile, tagged with the git revision; prints sizes
	@bash scripts/images.sh build

test-images: install ## Run the images as deploy/k8s does against the local infrastructure: probes, orders end to end, SIGTERM drain
	@bash scripts/images.sh test

sbom: ## A CycloneDX SBOM per built image (Python and Debian packages) into build/images/
	@bash scripts/images.sh sbom

k8s-validate: ## Render deploy/k8s overlays with kustomize, validate offline against Kubernetes schemas
	@bash deploy/k8s/validate.sh

asyncapi: install ## Generate the AsyncAPI documents from the contracts into docs/asyncapi/
	$(UV) run --frozen python -m juniper_shared.contracts.asyncapi docs/asyncapi

bench-orders: install ## Orders ingestion rate and accept latency beside their ceilings (JSON in bench/results/)
	KAFKA_BOOTSTRAP_SERVERS=$${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092} KAFKA_SECURITY_PROTOCOL=$${KAFKA_SECURITY_PROTOCOL:-SASL_PLAINTEXT} MONGODB_URL=$${MONGODB_URL:-mongodb://127.0.0.1:27017} \
		$(UV) run --frozen python bench/orders_bench.py

bench-chain: install ## Orders through the whole chain (ingest..email): throughput, stage latencies, ceilings, cost per order
	KAFKA_BOOTSTRAP_SERVERS=$${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092} KAFKA_SECURITY_PROTOCOL=$${KAFKA_SECURITY_PROTOCOL:-SASL_PLAINTEXT} MONGODB_URL=$${MONGODB_URL:-mongodb://127.0.0.1:27017} \
		$(UV) run --frozen python bench/chain_bench.py

bench-publish: install ## FastStream's publisher against aiokafka's producer, CPU per 1,000 records (not part of `make bench`)
	KAFKA_BOOTSTRAP_SERVERS=$${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092} KAFKA_SECURITY_PROTOCOL=$${KAFKA_SECURITY_PROTOCOL:-SASL_PLAINTEXT} \
		$(UV) run --frozen python bench/publish_bench.py

bench-floor: install ## The least CPU an order can cost on these parts, bare (database write, HTTP request, Kafka message)
	KAFKA_BOOTSTRAP_SERVERS=$${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092} KAFKA_SECURITY_PROTOCOL=$${KAFKA_SECURITY_PROTOCOL:-SASL_PLAINTEXT} MONGODB_URL=$${MONGODB_URL:-mongodb://127.0.0.1:27017} \
		$(UV) run --frozen python bench/floor_bench.py

accept-path: install ## The project files a seller's accept runs through (starts the infrastructure it needs)
	bash scripts/test.sh bench/accept_path.py -q -s

bench: bench-orders bench-chain bench-floor ## Every benchmark; the last line holds every figure (key=value)
	@$(UV) run --frozen python bench/summary.py

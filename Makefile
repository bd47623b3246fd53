# wharf — make help lists the targets.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin

GO        ?= go
PKGS      ?= ./...
# Tests get throwaway PostgreSQL and MariaDB servers (scripts/testdb.sh);
# fsync stays on only for benchmarks.
TESTDB    := bash scripts/testdb.sh
TESTFLAGS ?= -race -count=1 -timeout 20m

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@if [ -t 1 ] && [ -z "$${NO_COLOR:-}" ]; then on=$$'\033[36m' off=$$'\033[0m'; else on= off=; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %s%-14s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

# The example's binary: built, then exec'd, so that its own exit status (0
# after a clean stop on Ctrl-C) is make's.
TODO_BIN := bin/todo

.PHONY: run
run: ## Build and run the example todo app on SQLite (file:todo.db); set POSTGRES_DB_URL or MYSQL_DB_URL to switch, OTEL_TRACES_EXPORTER=console for traces.
	@echo "Building examples/todo (a module of its own) into $(TODO_BIN). The first build compiles the three database drivers and OpenTelemetry: a few minutes on an idle 2-core machine, more while Go downloads the modules; later builds take seconds."
	@start=$$(date +%s); (cd examples/todo && $(GO) build -o $(CURDIR)/$(TODO_BIN) .) && echo "Built in $$(( $$(date +%s) - start ))s. Starting it; Ctrl-C stops it."
	@exec ./$(TODO_BIN)

.PHONY: test
test: ## Run every test with -race on SQLite, PostgreSQL (direct and through PgBouncer) and MariaDB, and the console in headless Chromium (throwaway servers and the browser are installed and started).
	WHARF_TESTDB_FAST=1 $(TESTDB) run -- $(MAKE) --no-print-directory test-all

# test-all runs every test against the servers of the environment; the
# nested scripts/testdb.sh runs pass those servers through.
.PHONY: test-all
test-all:
	$(GO) test $(TESTFLAGS) $(PKGS)
	WHARF_TESTDB_FAST=1 $(TESTDB) run --postgres -- bash -c 'cd bench && $(GO) test $(TESTFLAGS) ./cmd/... ./latency/... ./scenarios/...'
	$(MAKE) --no-print-directory test-sinks
	$(MAKE) --no-print-directory test-modules
	$(MAKE) --no-print-directory test-browser

# The browser tests of the web console are a module of their own
# (console/browsertest/go.mod), so that chromedp is no dependency of the
# library; scripts/browser.sh installs Debian's chromium.
.PHONY: test-browser
test-browser: ## Drive the web console in headless Chromium (installed by scripts/browser.sh) on SQLite, PostgreSQL and MariaDB.
	WHARF_TESTDB_FAST=1 $(TESTDB) run --postgres --mysql -- bash scripts/browser.sh run -- bash -c 'cd console/browsertest && $(GO) vet ./... && $(GO) test $(TESTFLAGS) ./...'

.PHONY: screenshots
screenshots: ## Rewrite the console's screenshots (docs/console/*.png) from headless Chromium on SQLite.
	CI=true bash scripts/browser.sh run -- bash -c 'set -o pipefail; cd console/browsertest && CI=true WHARF_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -run "TestConsoleInABrowser/sqlite" -v ./... | grep -E "wrote|^(ok|FAIL|---)"'

.PHONY: test-purge-load
test-purge-load: ## Purge expired idempotency records under steady load for 60 s per dialect (make test runs it for 6 s).
	WHARF_TESTDB_FAST=1 $(TESTDB) run -- env WHARF_PURGE_LOAD_DURATION=60s $(GO) test -race -count=1 -timeout 10m -run TestPurgeUnderLoad -v ./internal/opse2e

.PHONY: test-sqlite
test-sqlite: ## Run the tests without starting servers; ends with a summary of the PostgreSQL/MySQL tests skipped.
	@set -o pipefail; $(GO) test $(TESTFLAGS) -json $(PKGS) | $(GO) run scripts/testsummary.go

.PHONY: conformance
conformance: ## Run only the conformance suite on every dialect, verbosely.
	WHARF_TESTDB_FAST=1 $(TESTDB) run -- $(GO) test -count=1 -run Conformance -v ./providers/... | grep -E '^(=== RUN|--- (FAIL|SKIP)|ok|FAIL|PASS)' | grep -v '=== RUN' || true

.PHONY: bench
bench: ## Benchmark wharf beside River and raw SQL on every dialect (fsync on; BENCHFLAGS=-quick for a smoke run); table + bench/results/latest.json.
	WHARF_TESTDB_FAST=0 $(TESTDB) run -- bash -c 'cd bench && $(GO) run . $(BENCHFLAGS)'
	$(MAKE) --no-print-directory bench-sinks
	$(MAKE) --no-print-directory bench-otel

# The broker sinks are modules of their own (sinks/*/go.mod), which the
# root's ./... does not enter; their tests run real nats-servers in-process.
SINKS := $(patsubst %/go.mod,%,$(wildcard sinks/*/go.mod))

.PHONY: test-sinks
test-sinks: ## Vet and test the broker sinks (sinks/*, modules of their own) with -race; no servers to start.
	@set -e; for m in $(SINKS); do echo "== $$m"; (cd $$m && $(GO) vet ./... && $(GO) test $(TESTFLAGS) ./...); done

.PHONY: bench-sinks
bench-sinks: ## Outbox → JetStream throughput beside publishing straight to JetStream: medians of 3 runs and ratios.
	bash sinks/jetstream/bench.sh

# otelwharf and the example app are modules of their own (OpenTelemetry and
# Prometheus stay out of the library's go.mod), which the root's ./... does
# not enter; their tests need the servers' variables (make test sets them).
MODULES := otelwharf examples/todo

.PHONY: test-modules
test-modules: ## Vet and test otelwharf and examples/todo with -race (under make test: on SQLite, PostgreSQL and MariaDB).
	@set -e; for m in $(MODULES); do echo "== $$m"; (cd $$m && $(GO) vet ./... && $(GO) test $(TESTFLAGS) ./...); done

.PHONY: bench-otel
bench-otel: ## OpenTelemetry instrumentation overhead (otelwharf): drain and enqueue without hooks, on no-op providers and with every span recorded, on SQLite and PostgreSQL; medians of 3 runs and ratios.
	WHARF_TESTDB_FAST=0 $(TESTDB) run --postgres -- bash otelwharf/bench.sh

.PHONY: scenarios
scenarios: ## Production scenarios, short profile (a few minutes): pins, readers, overload, crashes, restarts, killed connections, pool exhaustion; wharf beside River; report in docs/scenarios, summary in SCENARIOS.md (SCENARIOFLAGS=... for more).
	cd bench && $(GO) run ./scenarios -profile short -md ../SCENARIOS.md $(SCENARIOFLAGS)

.PHONY: scenarios-long
scenarios-long: ## Production scenarios, long profile for the report (800 msgs/s, 5-minute pin and readers; about 2 hours).
	cd bench && $(GO) run ./scenarios -profile long -md ../SCENARIOS.md $(SCENARIOFLAGS)

.PHONY: lint
lint: ## gofmt and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: db-start
db-start: ## Start throwaway servers for local work and print the export lines to eval.
	@$(TESTDB) start

.PHONY: clean
clean: ## Remove local SQLite files, the example binary (bin/) and test binaries.
	rm -rf todo.db todo.db-shm todo.db-wal *.test bin

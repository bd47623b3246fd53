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
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## Run the example todo app on SQLite (file:todo.db); set POSTGRES_DB_URL or MYSQL_DB_URL to switch.
	$(GO) run ./examples/todo

.PHONY: test
test: ## Run every test with -race on SQLite, PostgreSQL and MariaDB (throwaway servers are installed and started).
	WHARF_TESTDB_FAST=1 $(TESTDB) run -- $(GO) test $(TESTFLAGS) $(PKGS)

.PHONY: test-sqlite
test-sqlite: ## Run the tests without starting servers (PostgreSQL/MySQL tests are skipped loudly).
	$(GO) test $(TESTFLAGS) $(PKGS)

.PHONY: conformance
conformance: ## Run only the conformance suite on every dialect, verbosely.
	WHARF_TESTDB_FAST=1 $(TESTDB) run -- $(GO) test -count=1 -run Conformance -v ./providers/... | grep -E '^(=== RUN|--- (FAIL|SKIP)|ok|FAIL|PASS)' | grep -v '=== RUN' || true

.PHONY: bench
bench: ## Benchmark wharf beside River and raw SQL on every dialect (fsync on; BENCHFLAGS=-quick for a smoke run); table + bench/results/latest.json.
	WHARF_TESTDB_FAST=0 $(TESTDB) run -- bash -c 'cd bench && $(GO) run . $(BENCHFLAGS)'

.PHONY: lint
lint: ## gofmt and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: db-start
db-start: ## Start throwaway servers for local work and print the export lines to eval.
	@$(TESTDB) start

.PHONY: clean
clean: ## Remove local SQLite files and test binaries.
	rm -f todo.db todo.db-shm todo.db-wal *.test

# messagekit for Go. `make help` lists the targets.

GO            ?= go
BIN           ?= bin
BINARIES      := bridge dlq-bookkeeper admin-api
EXAMPLES      := producer consumer
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TOOLS         := $(CURDIR)/.tools
TEST_TIMEOUT  ?= 30m
TESTFLAGS     ?=
# An execution count, not a duration: Go 1.26's fuzz coordinator can fail a
# duration-bounded run with "context deadline exceeded" and no crasher when
# the machine is loaded (golang/go#75804, fixed in Go 1.27).
FUZZTIME      ?= 50000x
BENCHTIME     ?= 1s
LOADFLAGS     ?= -modes throughput,rate -rounds 2
DATABASE_URL  ?= postgres://localhost:5432/messagekit
# What `<binary> version` prints for a make build (see internal/service).
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null)
REVISION      ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS       := -X github.com/firstunicorn/messagekit-go/internal/service.version=$(VERSION) -X github.com/firstunicorn/messagekit-go/internal/service.revision=$(REVISION)

.PHONY: test-faults help build test test-short lint lint-dockerfile bench load demo migrate fuzz tidy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

build: ## build the three binaries and the example services into bin/
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES)) $(addprefix ./examples/,$(EXAMPLES))

test: ## unit and integration tests with the race detector (needs PostgreSQL and RabbitMQ; Kafka is in-process)
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(TESTFLAGS) ./...

FAULT_ROUNDS ?= 200
test-faults: ## the pipeline while its servers fail, FAULT_ROUNDS rounds (E2E_FAULT_SEED replays a run), then RabbitMQ closing its connections FAULT_ROUNDS/4 times; full log in test-faults.log
	E2E_FAULT_ROUNDS=$(FAULT_ROUNDS) $(GO) test -count=1 -timeout 0 -v -run '^TestServerFaults$$' ./test/e2e/ > test-faults.log 2>&1; s=$$?; \
	grep -E '^(--- |ok|FAIL)|seed|round [0-9]+:|rounds,|written to|more than once|lost|inversion|Error' test-faults.log; [ $$s -eq 0 ] || exit $$s; \
	E2E_CLOSE_ROUNDS=$$(( $(FAULT_ROUNDS) / 4 )) $(GO) test -count=1 -timeout 0 -v -run '^TestClosedConnections$$' ./test/e2e/ >> test-faults.log 2>&1; s=$$?; \
	grep -E '^(--- |ok|FAIL)|rounds:|inversion|Error' test-faults.log | tail -5; exit $$s

test-short: ## unit tests only, no services needed
	$(GO) test -short -count=1 ./...

lint: $(TOOLS)/staticcheck ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS)/staticcheck ./...
	$(MAKE) --no-print-directory lint-dockerfile

# dockerlinter (npm; hadolint is not installable here). Its install script
# would download shellcheck: the Debian package is used when present, and
# the RUN lines go unchecked without it.
lint-dockerfile: ## lint the Dockerfile
	npm_config_ignore_scripts=true npx --yes dockerlinter@2.0.0 -f Dockerfile -e info $(if $(shell command -v shellcheck),,-s none)

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install $(STATICCHECK)

bench: ## Go benchmarks, then the bridge as its own process (make load); figures are ratios within one run: this machine is shared
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...
	$(GO) run ./test/load $(LOADFLAGS)

load: ## the bridge as its own process: throughput vs the RabbitMQ ceiling, CPU/record, latency at 5k/s, RSS (LOADFLAGS)
	$(GO) run ./test/load $(LOADFLAGS)

demo: build ## run the pipeline locally: embedded Kafka, migrations, the binaries, the example producer and consumer
	$(GO) run ./examples/demo -bin $(BIN)

migrate: build ## apply the schema to DATABASE_URL
	DATABASE_URL=$(DATABASE_URL) $(BIN)/admin-api migrate

FUZZ_TARGETS  := FuzzDecode:./pkg/contracts FuzzDecodeDifferential:./pkg/contracts FuzzParse:./internal/bookkeeper/amqpdlq FuzzParse:./internal/bookkeeper/kafkadlq

fuzz: ## run each fuzz target for FUZZTIME (executions, e.g. 50000x)
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} in $${t#*:}"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) "$${t#*:}"; \
	done

tidy: ## go mod tidy, and fail if it changed anything
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

clean:
	rm -rf $(BIN) $(TOOLS)

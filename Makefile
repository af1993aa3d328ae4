# ductbot: the commands a developer and CI run.
GO       ?= go
PKGS     ?= ./...
# Integration tests start real control planes and IRC servers: keep them
# from running more than two packages at once on a small machine.
TESTFLAGS ?= -count=1 -timeout 40m -p 2

.PHONY: all build test unit fuzz lint bench demo cluster-bins clean

all: lint test

build:
	$(GO) build -o bin/ductbot ./cmd/ductbot

# Builds the local control plane's binaries into the cache (outside the
# repository) the first time; a no-op afterwards.
cluster-bins:
	$(GO) run ./cmd/ductbot dev install

# Everything: unit and integration tests, then a short fuzz of the chat router.
test: cluster-bins
	$(GO) test $(TESTFLAGS) $(PKGS)
	$(GO) test -run '^$$' -fuzz=FuzzRouter -fuzztime=20s ./bot/commands

unit:
	$(GO) test -count=1 -short $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Benchmarks print ratios and counts; nothing is asserted.
bench: cluster-bins
	$(GO) test -run '^$$' -bench . -benchtime 3x ./core/pipeline/ ./core/gerrit/ ./bot/commands/

# The whole loop on this machine: local cluster, Gerrit test server, ductbot
# with the console chat and the dashboard. Ctrl-C stops everything.
demo: cluster-bins
	$(GO) run ./cmd/ductbot demo

clean:
	rm -rf bin

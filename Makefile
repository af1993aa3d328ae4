# ductbot: the commands a developer and CI run.
GO       ?= go
PKGS     ?= ./...
# Integration tests start real control planes and IRC servers: keep them
# from running more than two packages at once on a small machine.
TESTFLAGS ?= -count=1 -timeout 40m -p 2

# Debian packages the tests and the demo run, as binary:package.
DEB_DEPS ?= /usr/bin/etcd:etcd-server /usr/sbin/ngircd:ngircd /usr/bin/chromium:chromium /usr/bin/pg_ctlcluster:postgresql /usr/bin/prometheus:prometheus

.PHONY: all build deps test unit fuzz lint bench demo cluster-bins clean

all: lint test

# bin/ductbot is the production binary; bin/ductbot-dev the development
# command (the local control plane, the demo).
build:
	$(GO) build -o bin/ductbot ./cmd/ductbot
	$(GO) build -o bin/ductbot-dev ./cmd/ductbot-dev

# Installs the Debian packages that are missing (as root), or says which.
deps:
	@missing=""; for d in $(DEB_DEPS); do [ -x "$${d%%:*}" ] || missing="$$missing $${d##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "==> installing Debian packages:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else echo "missing Debian packages:$$missing; install them with: sudo apt-get install$$missing"; exit 1; fi; \
	fi

# Builds the local control plane's binaries into the cache (outside the
# repository) the first time; a no-op afterwards.
cluster-bins: deps
	$(GO) run ./cmd/ductbot-dev install

# Everything: unit and integration tests, then a short fuzz of the chat router.
test: cluster-bins
	$(GO) test $(TESTFLAGS) $(PKGS)
	$(GO) test -run '^$$' -fuzz=FuzzRouter -fuzztime=20s ./bot/commands

unit:
	$(GO) test -count=1 -short $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Benchmarks print ratios and counts; nothing is asserted. The ones on the
# local cluster and Gerrit test server run 3 iterations, one package at a
# time (-p 1) so that their timings do not share the cores; the chat
# router's microbenchmarks run for a short time instead.
bench: cluster-bins
	$(GO) test -p 1 -count=1 -timeout 20m -run '^$$' -bench . -benchtime 3x ./core/pipeline/ ./core/pipeline/cleanup/ ./core/gerrit/ ./core/k8s/
	$(GO) test -count=1 -run '^$$' -bench 'Router' -benchtime 200ms ./bot/commands/
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 100x ./core/store/
	$(GO) test -count=1 -run '^$$' -bench Failover -benchtime 5x ./core/leader/

# The whole loop on this machine: local cluster, Gerrit test server, ductbot
# with the console chat and the dashboard. Ctrl-C stops everything.
demo: cluster-bins
	$(GO) run ./cmd/ductbot-dev demo

clean:
	rm -rf bin

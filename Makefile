# sentinel-proxy. `make demo` and `make test` are the README's two set-up commands: each installs what it
# needs from Debian's packages (apt-get, as root or through sudo) and runs on a fresh machine with Go.

GO        ?= go
BIN       := bin/sentinel-proxy
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
DEB_PKGS  := redis-server redis-sentinel redis-tools
# chromium runs the stats page's browser test (headless); prometheus brings promtool, which checks and
# unit-tests contrib/alerts.
TEST_PKGS := chromium prometheus
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build deps test-deps bench-deps demo test lint unit fuzz bench bench-failover screenshots clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

# deps installs Redis server, Sentinel and tools from Debian when any is missing.
deps:
	@if ! command -v redis-server >/dev/null || ! command -v redis-sentinel >/dev/null || ! command -v redis-cli >/dev/null; then \
		echo "installing $(DEB_PKGS) with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEB_PKGS); \
	fi

# test-deps adds what only the tests need: chromium for the browser test of the stats page, promtool.
test-deps: deps
	@{ command -v chromium && command -v promtool; } >/dev/null || { echo "installing $(TEST_PKGS) with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(TEST_PKGS); }

# demo starts 1 master + 2 replicas + 3 Sentinels on loopback and the proxy on 5000/5001/9000.
demo: deps build
	$(GO) run ./demo -proxy $(BIN)

# test is what CI runs: formatting, vet, staticcheck, then every test with the race detector.
test: test-deps lint
	$(GO) test -race -count=1 -timeout 15m ./...

lint:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# unit runs the tests that need no Redis processes.
unit:
	$(GO) test -race -count=1 ./config ./routing ./proxy ./stats

# fuzz runs each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./config -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./check -run '^$$' -fuzz FuzzParseReplication -fuzztime $(FUZZTIME)
	$(GO) test ./check -run '^$$' -fuzz FuzzReadReply -fuzztime $(FUZZTIME)
	$(GO) test ./sentinel -run '^$$' -fuzz FuzzParseEvent -fuzztime $(FUZZTIME)
	$(GO) test ./sentinel -run '^$$' -fuzz FuzzGuardConnScan -fuzztime $(FUZZTIME)

# bench compares direct Redis, sentinel-proxy and HAProxy (seed config): throughput, latency, memory.
bench: bench-deps build
	$(GO) run ./bench/throughput -proxy $(BIN) -rounds 5

# bench-failover runs the failover scenarios through sentinel-proxy and HAProxy side by side.
bench-failover: bench-deps build
	$(GO) run ./bench/failover -proxy $(BIN) -runs 5

bench-deps: deps
	@command -v haproxy >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq haproxy; }

# screenshots refreshes docs/img/stats-*.png from the browser test on a real topology.
screenshots: test-deps
	SCREENSHOTS=$(CURDIR)/docs/img $(GO) test -count=1 -run TestStatsPageInBrowser .

clean:
	rm -rf bin

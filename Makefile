# sentinel-proxy. `make demo` and `make test` are the README's two set-up commands: each installs what it
# needs from Debian's packages (apt-get, as root or through sudo) and runs on a fresh machine with Go.

GO        ?= go
BIN       := bin/sentinel-proxy
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
DEB_PKGS  := redis-server redis-sentinel redis-tools
# chromium runs the stats page's browser test (headless); prometheus brings promtool, which checks and
# unit-tests contrib/alerts; iproute2 and nftables build the network-namespace lab of the partition tests
# (package netlab; they need root, and skip with a message without it). python3-redis is redis-py for
# Debian's python3: the second client library of test/e2e's TestClientLibrariesNoticeNoFailover.
TEST_PKGS := chromium prometheus iproute2 nftables python3-redis
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build deps test-deps bench-deps redis-suite-src redis-suite demo test test-long lint unit fuzz bench bench-failover bench-partitions bench-fleet screenshots clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

# deps installs Redis server, Sentinel and tools from Debian when any is missing.
deps:
	@if ! command -v redis-server >/dev/null || ! command -v redis-sentinel >/dev/null || ! command -v redis-cli >/dev/null; then \
		echo "installing $(DEB_PKGS) with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEB_PKGS); \
	fi

# test-deps adds what only the tests need: chromium for the browser test of the stats page, promtool, and
# Redis's own test suite (bench/redissuite's TestSuiteThroughProxy).
test-deps: deps redis-suite-src
	@{ command -v chromium && command -v promtool && command -v ip && command -v nft && /usr/bin/python3 -c 'import redis'; } >/dev/null 2>&1 || { echo "installing $(TEST_PKGS) with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(TEST_PKGS); }

# redis-suite-src puts the source of the installed redis-server (Debian's source package: its tests/ and
# runtest) into REDIS_SRC, once. The machine's apt sources have no deb-src entry, so one is added for the
# download and removed afterwards; debian-security is in it because the installed server usually comes from
# there, and the exact installed version is asked for first. tcl runs the suite; dpkg-dev unpacks the source.
# REDIS_SRC is gitignored: the suite is never committed.
REDIS_SRC   := .cache/redis-src
SRC_SOURCES := /etc/apt/sources.list.d/sentinel-proxy-src.sources
redis-suite-src: deps
	@command -v tclsh8.6 >/dev/null && command -v dpkg-source >/dev/null || { echo "installing tcl dpkg-dev with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq tcl dpkg-dev; }
	@if [ ! -x $(REDIS_SRC)/runtest ]; then \
		set -e; version=$$(dpkg-query -W -f='$${Version}' redis-server); \
		echo "fetching the source of redis $$version (apt-get source) into $(REDIS_SRC)"; \
		trap '$(SUDO) rm -f $(SRC_SOURCES)' EXIT; \
		printf '%s\n' 'Types: deb-src' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm bookworm-updates' \
			'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' '' \
			'Types: deb-src' 'URIs: http://deb.debian.org/debian-security' 'Suites: bookworm-security' \
			'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' | $(SUDO) tee $(SRC_SOURCES) >/dev/null; \
		$(SUDO) apt-get update -qq; \
		rm -rf $(REDIS_SRC).tmp; mkdir -p $(REDIS_SRC).tmp; \
		(cd $(REDIS_SRC).tmp && { apt-get source -qq "redis=$$version" || { echo "redis $$version has no source package; taking the newest"; apt-get source -qq redis; }; }); \
		rm -rf $(REDIS_SRC); mv $(REDIS_SRC).tmp/redis-*/ $(REDIS_SRC); rm -rf $(REDIS_SRC).tmp; \
	fi

# redis-suite runs Redis's own test suite against the master directly and through sentinel-proxy, and lists
# the tests that pass directly but not through the proxy (bench/redissuite). ARGS adds flags, e.g.
# ARGS='-units unit/type/list,unit/latency-monitor -via direct,tcp'.
redis-suite: redis-suite-src build
	$(GO) run ./bench/redissuite -src $(REDIS_SRC) -proxy $(BIN) $(ARGS)

# demo starts 1 master + 2 replicas + 3 Sentinels on loopback and the proxy on 5000/5001/9000.
demo: deps build
	$(GO) run ./demo -proxy $(BIN)

# test is what CI runs: formatting, vet, staticcheck, then every test with the race detector. One package at
# a time (-p 1): several packages run real Sentinels with second-long timeouts, and two of them starving each
# other on two cores would test the machine, not the proxy.
test: test-deps lint
	$(GO) test -race -count=1 -p 1 -timeout 15m ./...

# test-long runs what make test leaves out to stay near 15 minutes on two cores: the longer scenarios of
# the resp-mode failover test (pause, restart with data, two failovers in a row, a killed master with shared
# connections), which make test runs for a manual failover and a killed master, in resp and multiplex mode.
test-long: test-deps
	SENTINEL_PROXY_LONG=1 $(GO) test -race -count=1 -p 1 -timeout 30m -run 'TestRESPFailoverIsInvisible' ./test/e2e

# lint also builds for macOS and vets for FreeBSD: every OS-specific file has a sibling for the other
# systems (arch_test.go checks it), and off Linux resp mode runs on the goroutine driver.
lint:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	GOOS=darwin $(GO) build ./...
	GOOS=freebsd $(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# unit runs the tests that need no Redis processes: every package of the product (arch_test.go checks
# that none is left out), with the tests that need Redis skipped (redistest.SkipWithoutRedis).
UNIT_PKGS := . ./config ./resp ./check ./sentinel ./routing ./switchover ./stats ./server ./proxy/...
unit:
	SENTINEL_PROXY_UNIT=1 $(GO) test -race -count=1 $(UNIT_PKGS)

# fuzz runs each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./config -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./check -run '^$$' -fuzz FuzzParseReplication -fuzztime $(FUZZTIME)
	$(GO) test ./sentinel -run '^$$' -fuzz FuzzParseEvent -fuzztime $(FUZZTIME)
	$(GO) test ./resp -run '^$$' -fuzz '^FuzzScanner$$' -fuzztime $(FUZZTIME)
	$(GO) test ./resp -run '^$$' -fuzz '^FuzzCommandScanner$$' -fuzztime $(FUZZTIME)
	$(GO) test ./resp -run '^$$' -fuzz '^FuzzPeek$$' -fuzztime $(FUZZTIME)
	$(GO) test ./proxy/respsession -run '^$$' -fuzz '^FuzzReplyStream$$' -fuzztime $(FUZZTIME)
	$(GO) test ./proxy/respsession -run '^$$' -fuzz '^FuzzConversation$$' -fuzztime $(FUZZTIME)

# bench compares direct Redis, sentinel-proxy (tcp, resp, resp with multiplex, both durable), HAProxy (seed
# config) and twemproxy: throughput and latency over 14 workloads (16 B to 16 KB values, 10 to 500 clients,
# pipelined, MGET, a 90/10 mix), memory, backend connections; then what one client's heavy commands cost
# the others on each path (head-of-line blocking). About 25 minutes. bench/profile says where a request's
# time goes (perf); bench-fleet what a fleet of proxies costs the Sentinels and nodes.
bench: bench-deps build
	$(GO) run ./bench/throughput -proxy $(BIN) -rounds 5
	$(GO) run ./bench/headofline -proxy $(BIN)

# bench-failover runs the failover scenarios through sentinel-proxy (tcp and resp mode) and HAProxy side by
# side, five runs each; then sentinel-proxy's planned switchover (to a replica chosen at random) beside a bare
# SENTINEL FAILOVER on every path, ten runs each, and says whether the switchover's targets were met. ARGS adds
# flags to both, e.g. ARGS='-runs 1' for a short check, or ARGS='-targets sentinel-proxy-resp'.
bench-failover: bench-deps build
	$(GO) run ./bench/failover -proxy $(BIN) -runs 5 -scenarios kill,pause,restart $(ARGS)
	$(GO) run ./bench/failover -proxy $(BIN) -runs 10 -scenarios switchover,manual $(ARGS)

# bench-partitions runs the network-partition scenarios through sentinel-proxy and HAProxy side by side, each
# run on a fresh lab of network namespaces (package netlab): needs root, iproute2 and nftables. split-fleet is
# scenario 1 with three proxies (two beside the old master, one with the majority), one table row per proxy
# and one for the fleet. Raw logs in bench/out/. ARGS adds flags: -short shortens the cuts; -scenarios picks
# some (split,sentinels,isolate,replicas,flap,split-fleet or 1-6); -runs N; -down-after D overrides Sentinel's.
bench-partitions: bench-deps build
	@{ command -v ip && command -v nft; } >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq iproute2 nftables; }
	$(GO) run ./bench/partitions -proxy $(BIN) -runs 1 $(ARGS)

# bench-fleet runs 100 proxies in front of one topology: the CPU and commands each Sentinel and node spends
# on them, idle, per interval setting, and how fast a SENTINEL FAILOVER reaches all of them (bench/fleet,
# docs/deploy.md). ARGS adds flags, e.g. ARGS='-n 20 -intervals 1s/1s'.
bench-fleet: deps build
	$(GO) run ./bench/fleet -proxy $(BIN) $(ARGS)

bench-deps: deps
	@{ command -v haproxy && command -v nutcracker; } >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq haproxy nutcracker; }

# screenshots refreshes docs/img/stats-*.png from the browser test on a real topology.
screenshots: test-deps
	SCREENSHOTS=$(CURDIR)/docs/img $(GO) test -count=1 -run TestStatsPageInBrowser ./test/e2e

clean:
	rm -rf bin

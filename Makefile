# tarn — make help lists every target.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN := bin/tarn
# Packages whose tests also run under the race detector.
RACE_PKGS := ./sdk/... ./host/...
FUZZTIME ?= 10s
# Systems make crossbuild checks besides the one building (GOOS/GOARCH).
CROSS_TARGETS ?= darwin/amd64 darwin/arm64 windows/amd64 freebsd/amd64 linux/arm64
DEV_DIR ?= $(HOME)/.tarn-dev
# make install: PREFIX, DESTDIR (staging root for packagers), and
# SYSTEMD_UNIT_DIR (e.g. /etc/systemd/system) to also put the unit files
# where systemd reads them; empty: only the examples in share/tarn/systemd.
PREFIX ?= /usr/local
DESTDIR ?=
SYSTEMD_UNIT_DIR ?=

.PHONY: help build run test crossbuild acceptance bench bench-go fuzz lint generate install clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/tarn (host, CLI and built-in plugins in one binary)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./host/cmd/tarn

run: build ## start a local dev grid (introducer, 5 storage nodes, client) in $(DEV_DIR)
	$(BIN) dev --dir $(DEV_DIR)

# go test's own limit is 10 minutes a package; host/grid and host/vdrive
# under -race took 522-600 s on a loaded 2-core machine.
TEST_TIMEOUT ?= 25m

test: lint crossbuild ## unit and integration tests, with -race on the core packages
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -count=1 -race -timeout $(TEST_TIMEOUT) $(RACE_PKGS)

crossbuild: ## go vet (compiles code and tests) for each of CROSS_TARGETS, so tarn keeps building off Linux
	@set -e; for t in $(CROSS_TARGETS); do echo "vet $$t"; GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet ./...; done

acceptance: build ## end-to-end tests: real tarn processes and real clients
	TARN_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -tags acceptance -timeout 30m ./acceptance/...

bench: build ## ceilings, codec plugin paths and end-to-end figures as ratios to this machine's limits (bench/results.json; BENCHFLAGS=-quick for ~1 min)
	$(GO) run ./acceptance/cmd/tarnbench -tarn $(BIN) -out bench/results.json $(BENCHFLAGS)
	$(GO) test -run '^$$' -bench Pipeline -benchtime 5x -count=1 ./host/chk
	$(GO) test -run '^$$' -bench 'BigDirectory|AddOne' -benchtime 3x -count=1 ./host/vdrive

bench-go: ## every Go benchmark of the tree (slow; per-package detail)
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./sdk/... ./plugins/... ./host/...

fuzz: ## run every fuzz target for FUZZTIME each
	FUZZTIME=$(FUZZTIME) bash .ci/fuzz

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags acceptance ./acceptance/...

generate: ## regenerate protobuf/gRPC code (needs Debian's protobuf-compiler)
	command -v protoc >/dev/null || { apt-get update && apt-get install -y protobuf-compiler; }
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" $(GO) generate ./...

install: build ## install tarn to PREFIX/bin (/usr/local) and systemd unit examples to PREFIX/share/tarn/systemd; honours DESTDIR and SYSTEMD_UNIT_DIR
	install -d -m 0755 $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/tarn/systemd
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/tarn
	@# The units name the binary as /usr/local/bin/tarn: point them at $(PREFIX).
	set -e; for f in conf/systemd/*.service; do \
	  u=$(DESTDIR)$(PREFIX)/share/tarn/systemd/$${f##*/}; \
	  sed 's|/usr/local/bin/tarn|$(PREFIX)/bin/tarn|g' $$f > $$u; chmod 0644 $$u; \
	  if [ -n "$(SYSTEMD_UNIT_DIR)" ]; then install -D -m 0644 $$u $(DESTDIR)$(SYSTEMD_UNIT_DIR)/$${f##*/}; fi; \
	done

clean: ## remove build output
	rm -rf bin

# quiesce — see README.md. Every target runs as root on Debian bookworm.
SHELL := /bin/bash
GO    ?= go
export PATH := $(PATH):/usr/local/go/bin:$(shell $(GO) env GOPATH 2>/dev/null)/bin:/usr/sbin:/sbin

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS := -s -w -X github.com/quiesce/quiesce/internal/buildinfo.Version=$(VERSION) -X github.com/quiesce/quiesce/internal/buildinfo.Commit=$(COMMIT)
BIN     := bin
CYCLES  ?= 5

.PHONY: all build hostagent bootstrap tools test test-short chaos bench demo lint clean package deps build-QuiesceFunction

all: build

build: hostagent bootstrap tools

# Static helper for the instance (no cgo, no runtime dependencies).
hostagent:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='$(LDFLAGS)' -o $(BIN)/hostagent ./hostagent

# The Lambda: linux/arm64 for AWS, plus a native build for the local emulator.
bootstrap:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags='$(LDFLAGS)' -o $(BIN)/lambda-arm64/bootstrap ./lambda
	CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags='$(LDFLAGS)' -o $(BIN)/bootstrap ./lambda

tools:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/awslocal ./test/cmd/awslocal
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/demo ./cmd/demo

# Used by `sam build` (BuildMethod: makefile).
build-QuiesceFunction:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags='$(LDFLAGS)' -o $(ARTIFACTS_DIR)/bootstrap ./lambda

deps:
	bash scripts/install-deps.sh

# The README's test command. Integration tests need root, loop devices, mariadbd and
# xfsprogs; CI installs them (scripts/install-deps.sh) so they run for real there.
test: deps
	$(GO) vet ./...
	test -z "$$(gofmt -l . | tee /dev/stderr)"
	$(GO) test -count=1 -timeout 25m ./...

test-short:
	$(GO) test -count=1 -short ./...

# Long chaos run against the real hostagent, loop XFS/ext4 and mariadbd
# (test/chaos). `make test` runs the same suite short (20 cases, part of ./...).
# Reproduce a run with CHAOS_SEED=<printed seed>, one case with CHAOS_ONLY=<index>.
CHAOS_CASES ?= 200
chaos: deps
	CHAOS_CASES=$(CHAOS_CASES) CHAOS_SEED=$(CHAOS_SEED) CHAOS_ONLY=$(CHAOS_ONLY) CHAOS_CATEGORIES=$(CHAOS_CATEGORIES) \
	  $(GO) test -count=1 -v -timeout 90m -run '^TestChaos$$' ./test/chaos/

# BenchmarkVerifyOverhead starts a server per iteration and its first run
# includes crash recovery: it gets 5 iterations of its own (a median, not
# one sample); the demo bench quotes its line in the report.
bench: deps build
	$(GO) test -run '^$$' -bench . -skip BenchmarkVerifyOverhead -benchtime 1x -timeout 20m ./... | tee $(BIN)/bench-go.txt
	$(GO) test -run '^$$' -bench BenchmarkVerifyOverhead -benchtime 5x -timeout 10m ./hostagent | tee -a $(BIN)/bench-go.txt
	$(BIN)/demo bench -cycles 50 -verify-runs 10 -go-bench $(BIN)/bench-go.txt -report $(BIN)/bench-report.md
	$(BIN)/demo replica -bench-cycles 10 -go-bench $(BIN)/bench-go.txt -report $(BIN)/bench-report.md

demo: deps build
	$(BIN)/demo run -cycles $(CYCLES)

lint:
	$(GO) vet ./...
	test -z "$$(gofmt -l . | tee /dev/stderr)"

# Release artifacts for the instance install document: static hostagent per arch + SHA-256.
package:
	mkdir -p dist
	for arch in amd64 arm64; do \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags='$(LDFLAGS)' -o dist/hostagent-linux-$$arch ./hostagent || exit 1; \
	done
	cd dist && sha256sum hostagent-linux-* > SHA256SUMS

clean:
	rm -rf $(BIN) dist .aws-sam

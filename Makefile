# gearbridge build, test and demo entry points. See README.md.
GO      ?= go
PKG     := github.com/gearbridge/gearbridge
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X $(PKG)/internal/buildinfo.Version=$(VERSION) -X $(PKG)/internal/buildinfo.Commit=$(COMMIT)
# The whole test suite; integration tests start their own gearmand.
TESTFLAGS ?= -race -timeout 40m

.PHONY: all build neb test deps demo proto proto-check lint bench soak man clean

all: build

build: bin/gearbridge neb

bin/gearbridge: FORCE
	$(GO) build -ldflags '$(LDFLAGS)' -o $@ ./cmd/gearbridge

neb:
	@scripts/build-neb.sh

deps:
	@scripts/install-deps.sh

test: deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) test $(TESTFLAGS) ./...

demo: deps build
	@scripts/demo.sh

bin/protoc-gen-go bin/protoc-gen-go-grpc: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o ../bin/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	cd tools && $(GO) build -o ../bin/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc

proto: bin/protoc-gen-go bin/protoc-gen-go-grpc
	"$$(scripts/install-buf.sh)" lint
	"$$(scripts/install-buf.sh)" generate

# Fails when the committed generated code differs from what buf generates.
proto-check: proto
	@git diff --exit-code -- proto/ || { echo "generated protobuf code is stale: run make proto and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- proto/)" || { git status --porcelain -- proto/; echo "untracked generated files: run make proto and commit"; exit 1; }

lint: proto-check
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

bench: deps bin/gearbridge
	@scripts/bench.sh

# The soak (not part of make test): the real Nagios 4.4.6 with the module and
# 3,000 check_dummy services, gearmand with its persistent queue, a bridge with
# 100 remote workers, a gearman-transport worker and a sender, with faults at
# random times, for SOAK_MINUTES (default 10). Prints one "summary ..." line.
SOAK_MINUTES ?= 10
SOAK_TIMEOUT ?= 90m
soak: deps
	@test -x /usr/lib/nagios/plugins/check_dummy || { [ "$$(id -u)" -eq 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq monitoring-plugins-basic >/dev/null; } || { echo "soak: needs check_dummy: apt-get install -y monitoring-plugins-basic"; exit 1; }
	SOAK_MINUTES=$(SOAK_MINUTES) $(GO) test -tags soak -run '^TestSoak$$' -count=1 -v -timeout $(SOAK_TIMEOUT) ./e2e/neb/

# Man pages for every command, generated from the command tree.
MANDIR ?= bin/man
man: bin/gearbridge
	rm -rf $(MANDIR)
	bin/gearbridge man --dir $(MANDIR)

clean:
	rm -rf bin

FORCE:

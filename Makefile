# gearbridge build, test and demo entry points. See README.md.
GO      ?= go
PKG     := github.com/gearbridge/gearbridge
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
# EXTRA_LDFLAGS: e.g. -s -w, which make deb passes (no symbol table and
# DWARF in the package, as Debian strips binaries).
EXTRA_LDFLAGS ?=
LDFLAGS := $(EXTRA_LDFLAGS) -X $(PKG)/internal/buildinfo.Version=$(VERSION) -X $(PKG)/internal/buildinfo.Commit=$(COMMIT)
# The whole test suite; integration tests start their own gearmand.
TESTFLAGS ?= -race -timeout 40m

.PHONY: all build neb test deps demo proto proto-check lint bench soak man completions install install-classic-links deb pkg-smoke clean

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
	@command -v promtool >/dev/null 2>&1 || scripts/install-deps.sh
	@command -v promtool >/dev/null 2>&1 || { echo "promtool missing: run make deps as root (Debian package prometheus)"; exit 1; }
	promtool check rules contrib/prometheus/alerts.yml

bench: deps bin/gearbridge
	@scripts/bench.sh

# The soak (not part of make test): the real Nagios 4.4.6 with the module and
# 3,000 check_dummy services, gearmand with its persistent queue, a bridge with
# 100 remote workers, a gearman-transport worker and a sender, with faults at
# random times, for SOAK_MINUTES (default 10). Prints one "summary ..." line.
SOAK_MINUTES ?= 10
SOAK_TIMEOUT ?= 90m
soak: deps
	@test -x /usr/lib/nagios/plugins/check_dummy || { echo "soak: needs check_dummy: apt-get install -y monitoring-plugins-basic"; exit 1; }
	SOAK_MINUTES=$(SOAK_MINUTES) $(GO) test -tags soak -run '^TestSoak$$' -count=1 -v -timeout $(SOAK_TIMEOUT) ./e2e/neb/

# Man pages for every command, generated from the command tree.
MANDIR ?= bin/man
man: bin/gearbridge
	rm -rf $(MANDIR)
	bin/gearbridge man --dir $(MANDIR)

# Shell completion scripts, generated from the command tree.
completions: bin/gearbridge
	mkdir -p bin/completions
	bin/gearbridge completion bash > bin/completions/gearbridge
	bin/gearbridge completion zsh > bin/completions/_gearbridge
	bin/gearbridge completion fish > bin/completions/gearbridge.fish

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary, both broker
# modules, systemd units (pointing at $(BINDIR)), sysusers.d and tmpfiles.d
# entries, man pages, completions and the example files. Nothing goes to
# /etc: copy the examples from $(DOCDIR)/examples (the package does that).
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
LIBDIR      ?= $(PREFIX)/lib
DATADIR     ?= $(PREFIX)/share
UNITDIR     ?= $(LIBDIR)/systemd/system
SYSUSERSDIR ?= $(LIBDIR)/sysusers.d
TMPFILESDIR ?= $(LIBDIR)/tmpfiles.d
MAN1DIR     ?= $(DATADIR)/man/man1
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR  ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
DOCDIR      ?= $(DATADIR)/doc/gearbridge
UNITS       := $(wildcard contrib/systemd/*.service)
EXAMPLES    := contrib/bridge.yaml contrib/worker.yaml contrib/worker-gearman.yaml contrib/authz.yaml

install: build man completions
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/gearbridge $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(MAN1DIR) \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) \
		$(DESTDIR)$(DOCDIR)/examples/systemd $(DESTDIR)$(DOCDIR)/examples/prometheus $(DESTDIR)$(DOCDIR)/examples/grafana
	install -m 0755 bin/gearbridge $(DESTDIR)$(BINDIR)/gearbridge
	install -m 0644 bin/gearbridge_neb.so bin/gearbridge_neb_nagios4.so $(DESTDIR)$(LIBDIR)/gearbridge/
	for u in $(UNITS); do \
		sed 's|/usr/bin/gearbridge|$(BINDIR)/gearbridge|g' $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u) && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
	done
	install -m 0644 contrib/sysusers.d/gearbridge.conf $(DESTDIR)$(SYSUSERSDIR)/gearbridge.conf
	install -m 0644 contrib/tmpfiles.d/gearbridge.conf $(DESTDIR)$(TMPFILESDIR)/gearbridge.conf
	install -m 0644 $(MANDIR)/*.1 $(DESTDIR)$(MAN1DIR)/
	install -m 0644 bin/completions/gearbridge $(DESTDIR)$(BASHCOMPDIR)/gearbridge
	install -m 0644 bin/completions/_gearbridge $(DESTDIR)$(ZSHCOMPDIR)/_gearbridge
	install -m 0644 bin/completions/gearbridge.fish $(DESTDIR)$(FISHCOMPDIR)/gearbridge.fish
	install -m 0644 $(EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/
	for f in $(wildcard contrib/systemd/*.conf.example contrib/prometheus/*.yml contrib/grafana/*.json); do \
		install -m 0644 $$f $(DESTDIR)$(DOCDIR)/examples/$$(basename $$(dirname $$f))/ || exit 1; \
	done

# The classic tool names, as symlinks: the binary takes the personality of
# the name it is called by.
install-classic-links:
	install -d $(DESTDIR)$(BINDIR)
	ln -sfn gearbridge $(DESTDIR)$(BINDIR)/send_gearman
	ln -sfn gearbridge $(DESTDIR)$(BINDIR)/mod_gearman_worker

# make deb: bin/gearbridge_<version>_amd64.deb, built by nfpm (pinned in
# tools/go.mod) from a `make install` into bin/debroot with PREFIX=/usr.
DEB_VERSION ?= $(shell scripts/deb-version.sh)
DEB_ARCH    ?= $(shell $(GO) env GOARCH)
DEB         := bin/gearbridge_$(DEB_VERSION)_$(DEB_ARCH).deb

bin/nfpm: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o ../bin/nfpm github.com/goreleaser/nfpm/v2/cmd/nfpm

deb: bin/nfpm
	rm -rf bin/debroot bin/gearbridge_*.deb
	$(MAKE) install DESTDIR=$(CURDIR)/bin/debroot PREFIX=/usr ZSHCOMPDIR=/usr/share/zsh/vendor-completions EXTRA_LDFLAGS='-s -w'
	DEB_VERSION='$(DEB_VERSION)' DEB_ARCH='$(DEB_ARCH)' bin/nfpm package --config packaging/nfpm.yaml --packager deb --target $(DEB)
	@echo "built $(DEB)"

# Installs the package it builds and checks it (root only): see the script.
pkg-smoke:
	@scripts/pkg-smoke.sh

clean:
	rm -rf bin

FORCE:

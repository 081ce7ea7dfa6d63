#!/usr/bin/env bash
# Builds the broker module for both cores from one source: the Naemon layout
# (NEB API 8) and, with the nagios4 build tag, Nagios 4.4 (API 4).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
CGO_ENABLED=1 go build -buildmode=c-shared -o bin/gearbridge_neb.so ./cmd/gearbridge-neb
CGO_ENABLED=1 go build -tags nagios4 -buildmode=c-shared -o bin/gearbridge_neb_nagios4.so ./cmd/gearbridge-neb
rm -f bin/gearbridge_neb.h bin/gearbridge_neb_nagios4.h

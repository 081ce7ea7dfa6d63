#!/usr/bin/env bash
# Prints the path of buf v1.75.0, installing it into $(go env GOPATH)/bin
# when it is missing (about 70 s on a fresh machine).
set -euo pipefail
want=1.75.0
gobin=$(go env GOBIN)
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
for b in "$(command -v buf 2>/dev/null || true)" "$gobin/buf"; do
  if [ -n "$b" ] && [ -x "$b" ] && [ "$("$b" --version 2>/dev/null)" = "$want" ]; then
    echo "$b"
    exit 0
  fi
done
echo "install-buf: installing buf v$want" >&2
GOBIN="$gobin" go install "github.com/bufbuild/buf/cmd/buf@v$want" >&2
echo "$gobin/buf"

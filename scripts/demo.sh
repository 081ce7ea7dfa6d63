#!/usr/bin/env bash
# The main job end to end: gearmand, a bridge, two remote workers over
# mutual TLS, and checks pushed as the classic NEB module formats them.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./internal/demo -bin bin/gearbridge "$@"

#!/usr/bin/env bash
# The main job end to end: gearmand, a bridge, two remote workers over
# mutual TLS, and checks pushed as the classic NEB module formats them;
# then the real Nagios 4.4 core with the broker module on the same
# processes (make demo builds bin/gearbridge_neb_nagios4.so first).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f bin/gearbridge_neb_nagios4.so ] && command -v gcc >/dev/null; then
  scripts/build-neb.sh
fi
exec go run ./internal/demo -bin bin/gearbridge "$@"

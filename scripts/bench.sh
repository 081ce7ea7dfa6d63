#!/usr/bin/env bash
# Runs the benchmarks against a gearmand of their own on a free port and
# prints their figures. Each benchmark's last line is a name=value summary.
set -euo pipefail
cd "$(dirname "$0")/.."
gearmand=$(command -v gearmand || echo /usr/sbin/gearmand)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
"$gearmand" --listen=127.0.0.1 --port="$port" -R --log-file="$dir/gearmand.log" --verbose=WARNING &
gpid=$!
trap 'kill $gpid 2>/dev/null; wait $gpid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  (echo > /dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  sleep 0.1
done
echo "== gearbridge bench gearman"
bin/gearbridge bench gearman --server 127.0.0.1:"$port" --log-level warn
echo
echo "== gearbridge bench bridge"
bin/gearbridge bench bridge --server 127.0.0.1:"$port" --log-level warn
echo
# Real processes (bridge, remote worker, direct worker) and a real plugin.
plugins=/usr/lib/nagios/plugins
[ -x "$plugins/check_dummy" ] || plugins=/usr/lib/monitoring-plugins
echo "== gearbridge bench bridge --exec check_dummy"
bin/gearbridge bench bridge --server 127.0.0.1:"$port" --gearmand-pid "$gpid" --log-level warn \
  --exec "$plugins/check_dummy 0"
echo
echo "== gearbridge bench send"
bin/gearbridge bench send --server 127.0.0.1:"$port" --log-level warn
echo
echo "== broker module (C fake core, real gearmand)"
go test -count=1 -run TestBenchmarkFigures -v ./e2e/neb | grep -v -E '^(=== RUN|--- PASS|PASS$|ok )'

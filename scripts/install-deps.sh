#!/usr/bin/env bash
# Installs the Debian packages the tests, the demo and the benches need: the real Gearman
# job server and CLI, openssl (the independent oracle for the payload
# codec), and perl with Monitoring::Plugin (the embedded Perl server's
# tests and benchmark). Only root can install; others get a clear message and the tests
# that need a missing part skip loudly.
set -euo pipefail

need=()
command -v gearmand >/dev/null 2>&1 || [ -x /usr/sbin/gearmand ] || need+=(gearman-job-server)
command -v gearman >/dev/null 2>&1 || need+=(gearman-tools)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
# Prometheus and promtool: e2e/prometheus_test.go and make lint's rule check.
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v perl >/dev/null 2>&1 || need+=(perl)
perl -MMonitoring::Plugin -e 1 >/dev/null 2>&1 || need+=(libmonitoring-plugin-perl)
# Real plugins (check_dummy): make bench's --exec run and make soak.
[ -x /usr/lib/nagios/plugins/check_dummy ] || need+=(monitoring-plugins-basic)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages: ${need[*]}" >&2
  echo "install-deps: run as root, or: sudo apt-get install -y ${need[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${need[*]}" >&2
if ! apt-get install -y -qq "${need[@]}" >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

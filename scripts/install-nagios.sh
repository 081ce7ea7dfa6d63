#!/usr/bin/env bash
# Unpacks Debian's Nagios 4.4.6 core (nagios4-core + nagios4-common) into a
# cache directory without installing the package, so that no MTA and no
# service start come with it. Idempotent: a second run only prints the path.
# Prints the path of the nagios4 binary on stdout.
#
#   GEARBRIDGE_NAGIOS_DIR  cache directory (default /var/cache/gearbridge/nagios4)
set -euo pipefail
dir="${GEARBRIDGE_NAGIOS_DIR:-/var/cache/gearbridge/nagios4}"
bin="$dir/root/usr/sbin/nagios4"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$dir/debs" "$dir/root"
cd "$dir/debs"
if ! ls nagios4-core_*.deb >/dev/null 2>&1 || ! ls nagios4-common_*.deb >/dev/null 2>&1; then
  if ! apt-get download nagios4-core nagios4-common >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; fi
    apt-get download nagios4-core nagios4-common >&2
  fi
fi
for deb in nagios4-core_*.deb nagios4-common_*.deb; do
  dpkg -x "$deb" "$dir/root"
done
test -x "$bin"
echo "$bin"

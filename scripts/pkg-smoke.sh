#!/usr/bin/env bash
# Installs the Debian package that `make deb` builds and checks it as an
# administrator would meet it (root only; CI runs it after `make test`):
#
#   1. dpkg -i; the installed `gearbridge version` runs; the gearbridge user
#      and its directories exist with the right owners and modes.
#   2. The installed units pass `systemd-analyze verify`, and
#      `systemd-analyze security` rates the bridge and both workers below 5.
#   3. The real Nagios 4.4.6 core loads /usr/lib/gearbridge/gearbridge_neb_nagios4.so
#      and a check goes through gearmand and the installed central worker,
#      running as the gearbridge user, back into the core.
#   4. The bridge starts as the gearbridge user with the packaged
#      bridge.yaml and a CA set up as the README says, unable to read the
#      CA key.
#   5. dpkg -r removes every file the package installed except its
#      conffiles; dpkg --purge then removes those.
#
# Bounded by PKG_SMOKE_TIMEOUT seconds (default 600); gearmand, the worker
# and the core listen on loopback ports picked at run time and are stopped
# on every exit.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "pkg-smoke: needs root (dpkg -i); skipped" >&2
  exit 0
fi
if [ -z "${PKG_SMOKE_BOUNDED:-}" ]; then
  PKG_SMOKE_BOUNDED=1 exec timeout --kill-after=15 "${PKG_SMOKE_TIMEOUT:-600}" "$0" "$@"
fi
export DEBIAN_FRONTEND=noninteractive

say() { echo "pkg-smoke: $*" >&2; }
fail() {
  say "FAIL: $*"
  exit 1
}

made_ca=
work=$(mktemp -d /tmp/gearbridge-pkg-smoke.XXXXXX)
chmod 0755 "$work"
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ]; then
    for f in "$work"/*.log "$work"/nagios/nagios.log; do
      [ -f "$f" ] && { say "--- $f"; tail -n 30 "$f" >&2; }
    done
  fi
  # Leave no package behind (a failed run may have stopped half-way).
  if dpkg-query -W -f='${Status}' gearbridge 2>/dev/null | grep -q 'install ok\|config-files'; then
    dpkg --purge gearbridge >/dev/null 2>&1 || true
  fi
  if [ -n "${made_ca:-}" ]; then
    rm -rf /etc/gearbridge/ca /etc/gearbridge/tls
    rmdir /etc/gearbridge 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# free_port prints a loopback TCP port nobody listens on.
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    return
  fi
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (echo >/dev/tcp/127.0.0.1/"$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# wait_port waits up to 10 s for a listener on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 100); do
    (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  fail "nothing listens on 127.0.0.1:$1"
}

# http_get prints the body of http://127.0.0.1:$1$2.
http_get() {
  exec 3<>/dev/tcp/127.0.0.1/"$1"
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}

# Tools: systemd-analyze (the systemd package installs it without starting
# anything in a container), gearmand, the Nagios core.
need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v gearmand >/dev/null 2>&1 || [ -x /usr/sbin/gearmand ] || need+=(gearman-job-server)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get install -y -qq "${need[@]}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
fi
gearmand=$(command -v gearmand || echo /usr/sbin/gearmand)
nagios=$(scripts/install-nagios.sh)

if dpkg-query -W -f='${Status}' gearbridge 2>/dev/null | grep -q 'install ok'; then
  fail "a gearbridge package is installed already; remove it first"
fi

say "building the package"
make --no-print-directory deb >"$work/make-deb.log" 2>&1 || { tail -n 30 "$work/make-deb.log" >&2; fail "make deb"; }
debs=(bin/gearbridge_*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "make deb left ${debs[*]}"
deb=${debs[0]}
say "$deb: $(du -k "$deb" | cut -f1) KiB"

# The package must hold what the issue lists, whatever the tree looks like.
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|' >"$work/contents"
for f in /usr/bin/gearbridge /usr/lib/gearbridge/gearbridge_neb.so /usr/lib/gearbridge/gearbridge_neb_nagios4.so \
  /usr/lib/systemd/system/gearbridge-bridge.service /usr/lib/systemd/system/gearbridge-worker.service \
  /usr/lib/systemd/system/gearbridge-worker-gearman.service /usr/lib/systemd/system/gearbridge-send.service \
  /usr/lib/sysusers.d/gearbridge.conf /usr/lib/tmpfiles.d/gearbridge.conf \
  /usr/share/man/man1/gearbridge.1 /usr/share/man/man1/gearbridge-bridge.1 \
  /usr/share/bash-completion/completions/gearbridge /usr/share/zsh/vendor-completions/_gearbridge \
  /usr/share/fish/vendor_completions.d/gearbridge.fish /usr/share/doc/gearbridge/examples/bridge.yaml \
  /etc/gearbridge/bridge.yaml /etc/gearbridge/worker.yaml /etc/gearbridge/worker-gearman.yaml /etc/gearbridge/authz.yaml; do
  grep -qxF "$f" "$work/contents" || fail "$deb lacks $f"
done
dpkg-deb -e "$deb" "$work/control"
for f in /etc/gearbridge/bridge.yaml /etc/gearbridge/worker.yaml /etc/gearbridge/worker-gearman.yaml /etc/gearbridge/authz.yaml; do
  grep -qxF "$f" "$work/control/conffiles" || fail "$f is not a conffile"
done

say "installing"
dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; fail "dpkg -i"; }
# Installing again (an upgrade to the same version) must work too: the
# maintainer scripts are idempotent.
dpkg -i "$deb" >>"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; fail "second dpkg -i"; }
dpkg-query -L gearbridge | sort >"$work/installed"
/usr/bin/gearbridge version | tee "$work/version.log" | grep -q '^gearbridge ' || fail "gearbridge version: $(cat "$work/version.log")"
getent passwd gearbridge >/dev/null || fail "no gearbridge user after installation"
check_dir() { # path mode owner group
  local got
  got=$(stat -c '%a %U %G' "$1" 2>/dev/null) || fail "$1 missing"
  [ "$got" = "$2 $3 $4" ] || fail "$1 is $got, want $2 $3 $4"
}
check_dir /var/lib/gearbridge 755 root root
check_dir /etc/gearbridge/ca 750 root gearbridge
check_dir /etc/gearbridge/tls 750 root gearbridge
check_dir /etc/gearbridge/bridge.yaml 640 root gearbridge

say "systemd-analyze verify and security"
units=(/usr/lib/systemd/system/gearbridge-{bridge,worker,worker-gearman,send}.service)
manopt=()
command -v man >/dev/null 2>&1 || manopt=(--man=no)
systemd-analyze verify "${manopt[@]}" "${units[@]}" >"$work/verify.log" 2>&1 || { cat "$work/verify.log" >&2; fail "systemd-analyze verify"; }
for u in "${units[@]}"; do
  line=$(systemd-analyze security --offline=true --no-pager "$u" 2>&1 | grep 'Overall exposure level' || true)
  level=$(echo "$line" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
  [ -n "$level" ] || fail "no exposure level for $u"
  say "$(basename "$u"): exposure $level"
  case $(basename "$u") in
    gearbridge-send.service) ;;
    *) awk -v l="$level" 'BEGIN{exit !(l < 5)}' || fail "$(basename "$u") exposure $level, want below 5" ;;
  esac
done

say "a check through the installed broker module and central worker"
key=pkg_smoke_key_0123456789
gport=$(free_port)
"$gearmand" --listen=127.0.0.1 --port="$gport" --log-file="$work/gearmand.log" --verbose=WARNING &
pids+=($!)
wait_port "$gport"
mport=$(free_port)
cat >"$work/check_smoke" <<'EOF'
#!/bin/sh
echo "PKG-SMOKE $1 ran as $(id -un)"
exit 0
EOF
chmod 0755 "$work/check_smoke"
# As the unit runs it: the packaged binary, as the packaged user.
runuser -u gearbridge -- /usr/bin/gearbridge worker --transport=gearman --server 127.0.0.1:"$gport" \
  --key "$key" --hosts --services --identifier pkg-smoke --metrics-listen 127.0.0.1:"$mport" \
  --log-level warn >"$work/worker.log" 2>&1 &
pids+=($!)
wait_port "$mport"

nd="$work/nagios"
mkdir -p "$nd/checkresults"
cat >"$nd/objects.cfg" <<EOF
define timeperiod {
  timeperiod_name 24x7
  alias 24x7
  sunday 00:00-24:00
  monday 00:00-24:00
  tuesday 00:00-24:00
  wednesday 00:00-24:00
  thursday 00:00-24:00
  friday 00:00-24:00
  saturday 00:00-24:00
}
define command {
  command_name notify_none
  command_line /bin/true
}
define contact {
  contact_name admin
  host_notifications_enabled 0
  service_notifications_enabled 0
  host_notification_period 24x7
  service_notification_period 24x7
  host_notification_options n
  service_notification_options n
  host_notification_commands notify_none
  service_notification_commands notify_none
}
define command {
  command_name check_smoke
  command_line $work/check_smoke \$ARG1\$
}
define host {
  host_name h1
  address 127.0.0.1
  check_command check_smoke!host
  check_interval 300
  max_check_attempts 1
  check_period 24x7
  contacts admin
  notification_period 24x7
}
define service {
  host_name h1
  service_description smoke
  check_command check_smoke!service
  check_interval 2
  retry_interval 2
  max_check_attempts 1
  check_period 24x7
  notification_period 24x7
  contacts admin
}
EOF
printf 'server=127.0.0.1:%s\nkey=%s\nhosts=yes\nservices=yes\n' "$gport" "$key" >"$nd/neb.conf"
cat >"$nd/nagios.cfg" <<EOF
log_file=$nd/nagios.log
cfg_file=$nd/objects.cfg
object_cache_file=$nd/objects.cache
precached_object_file=$nd/objects.precache
status_file=$nd/status.dat
status_update_interval=1
nagios_user=root
nagios_group=root
command_file=$nd/nagios.cmd
query_socket=$nd/nagios.qh
lock_file=$nd/nagios.lock
temp_file=$nd/nagios.tmp
temp_path=$nd
check_result_path=$nd/checkresults
event_broker_options=-1
broker_module=/usr/lib/gearbridge/gearbridge_neb_nagios4.so config=$nd/neb.conf
log_rotation_method=n
use_syslog=0
interval_length=1
max_service_check_spread=1
max_host_check_spread=1
check_result_reaper_frequency=1
retain_state_information=0
check_for_updates=0
enable_notifications=0
execute_service_checks=1
execute_host_checks=1
EOF
"$nagios" "$nd/nagios.cfg" >"$work/nagios-stdout.log" 2>&1 &
pids+=($!)
want="PKG-SMOKE service ran as gearbridge"
for i in $(seq 300); do
  grep -qF "plugin_output=$want" "$nd/status.dat" 2>/dev/null && break
  kill -0 "${pids[-1]}" 2>/dev/null || fail "nagios exited"
  [ "$i" -lt 300 ] || fail "no \"$want\" in status.dat after 30 s"
  sleep 0.1
done
grep -q 'gearbridge.*initialized for Nagios 4' "$nd/nagios.log" || fail "the core did not log the module's start"
received=$(http_get "$mport" /metrics | sed -n 's/^gearbridge_worker_jobs_received_total \([0-9.e+]*\)$/\1/p')
awk -v n="${received:-0}" 'BEGIN{exit !(n >= 1)}' || fail "worker metrics count ${received:-no} received jobs"
say "service result \"$want\" came through gearmand and the worker ($received jobs)"

say "the bridge as the README sets it up: the packaged bridge.yaml, the CA key out of reach"
if [ -e /etc/gearbridge/ca/ca.key ]; then
  say "skipped: /etc/gearbridge/ca holds a CA already"
else
  made_ca=1
  /usr/bin/gearbridge certs init --dir /etc/gearbridge/ca >/dev/null
  /usr/bin/gearbridge certs issue --dir /etc/gearbridge/ca --role bridge --name bridge --out /etc/gearbridge/tls >/dev/null
  chgrp gearbridge /etc/gearbridge/tls/bridge.key && chmod 0640 /etc/gearbridge/tls/bridge.key
  printf '%s\n' "$key" >"$work/secret.key"
  chgrp gearbridge "$work/secret.key" && chmod 0640 "$work/secret.key"
  printf 'rules:\n  - {identity: "*", role: worker, queues: ["*"]}\n' >"$work/authz.yaml"
  chmod 0644 "$work/authz.yaml"
  if runuser -u gearbridge -- cat /etc/gearbridge/ca/ca.key >/dev/null 2>&1; then
    fail "the gearbridge user can read the CA key"
  fi
  bport=$(free_port)
  bmport=$(free_port)
  runuser -u gearbridge -- /usr/bin/gearbridge --config /etc/gearbridge/bridge.yaml bridge \
    --server 127.0.0.1:"$gport" --keyfile "$work/secret.key" --authz "$work/authz.yaml" \
    --listen 127.0.0.1:"$bport" --metrics-listen 127.0.0.1:"$bmport" >"$work/bridge.log" 2>&1 &
  pids+=($!)
  wait_port "$bport"
  wait_port "$bmport"
  http_get "$bmport" /metrics | grep -q '^gearbridge_certificate_expiry_timestamp_seconds{identity="bridge",role="bridge"}' ||
    fail "the bridge does not export its certificate's expiry"
  say "the bridge serves with the packaged configuration as user gearbridge"
fi

for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()

say "removing"
dpkg -r gearbridge >"$work/dpkg-r.log" 2>&1 || { cat "$work/dpkg-r.log" >&2; fail "dpkg -r"; }
dpkg-query -W -f='${Status}\n' gearbridge | grep -q 'deinstall ok config-files' || fail "status after dpkg -r: $(dpkg-query -W -f='${Status}' gearbridge)"
conffiles=$(sed 's|^\./|/|' "$work/control/conffiles")
left=()
while read -r f; do
  if grep -qxF "$f" <<<"$conffiles"; then
    [ -f "$f" ] || fail "conffile $f removed by dpkg -r"
  elif [ -d "$f" ]; then
    # Directories of other packages stay; the package's own must go.
    case $f in /usr/lib/gearbridge | /usr/share/doc/gearbridge* ) left+=("$f") ;; esac
  elif [ -e "$f" ] || [ -L "$f" ]; then
    left+=("$f")
  fi
done <"$work/installed"
[ ${#left[@]} -eq 0 ] || fail "dpkg -r left ${left[*]}"
dpkg --purge gearbridge >/dev/null 2>&1 || fail "dpkg --purge"
for f in $conffiles; do
  [ ! -e "$f" ] || fail "dpkg --purge left $f"
done
say "ok: $(wc -l <"$work/installed") paths installed, all removed but the conffiles, which purge removed"

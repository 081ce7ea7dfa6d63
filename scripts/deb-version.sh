#!/usr/bin/env bash
# Prints the Debian package version of the checkout: a release tag v1.2.3 is
# 1.2.3; commits after it add +<n>.g<hash>; an untagged history gives
# 0.0.0~dev+g<hash> (sorting before any release); uncommitted changes add
# .dirty. Without git: 0.0.0~dev. Only [0-9A-Za-z.+~] are used, so the
# result is a valid Debian upstream version without a revision.
set -euo pipefail
cd "$(dirname "$0")/.."
d=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || true)
if [ -n "$d" ]; then
  d=${d#v}
  dirty=
  case $d in *-dirty) dirty=.dirty; d=${d%-dirty} ;; esac
  if [[ $d =~ ^(.*)-([0-9]+)-(g[0-9a-f]+)$ ]]; then
    d="${BASH_REMATCH[1]}+${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
  fi
  v="$d$dirty"
else
  h=$(git describe --always --dirty 2>/dev/null || true)
  if [ -z "$h" ]; then
    v=0.0.0~dev
  else
    v="0.0.0~dev+g${h%-dirty}"
    case $h in *-dirty) v="$v.dirty" ;; esac
  fi
fi
# Anything else a tag may hold (letters are fine, '-' and '_' are not).
v=$(printf '%s' "$v" | tr -- '-_' '~~' | tr -cd '0-9A-Za-z.+~')
[[ $v =~ ^[0-9] ]] || v="0.0.0~$v"
echo "$v"

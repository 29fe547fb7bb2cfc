#!/usr/bin/env bash
# Install promtool / amtool (Prometheus 2.42 and Alertmanager 0.25 from Debian) for
# tests/test_alert_rules.py. Idempotent: does nothing when both tools are already found on PATH, in
# $LITELLM_CANARY_PROM_BIN or in .ci/bin (the places the tests look).
#
#   root:     apt-get update + apt-get install (binaries land in /usr/bin)
#   non-root: apt-get download + dpkg-deb -x, binaries copied into $LITELLM_CANARY_PROM_BIN or
#             .ci/bin (needs apt lists, i.e. an earlier apt-get update by someone)
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${LITELLM_CANARY_PROM_BIN:-.ci/bin}"

have() {
  command -v "$1" >/dev/null 2>&1 || [ -x "$cache/$1" ]
}

if have promtool && have amtool; then
  echo "install-prometheus: promtool and amtool already present"
  exit 0
fi

packages=(prometheus prometheus-alertmanager)

if [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  # The Debian packages start nothing in a container; stop the services where an init system did.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl stop prometheus prometheus-alertmanager prometheus-node-exporter 2>/dev/null || true
  fi
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download -qq "${packages[@]}")
  for deb in "$work"/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
  done
  mkdir -p "$cache"
  for tool in promtool prometheus amtool prometheus-alertmanager; do
    if [ -x "$work/root/usr/bin/$tool" ]; then
      cp "$work/root/usr/bin/$tool" "$cache/$tool"
    fi
  done
fi

if have promtool && have amtool; then
  echo "install-prometheus: promtool and amtool installed"
else
  echo "install-prometheus: promtool/amtool still missing" >&2
  exit 1
fi

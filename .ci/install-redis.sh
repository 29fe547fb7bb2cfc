#!/usr/bin/env bash
# Install redis-server (Debian package) for tests/test_broadcast.py, tests/test_cli_rollback.py and
# benchmarks/propagation.py, which start their own redis-server on a random loopback port.
# Idempotent: does nothing when redis-server is already on PATH (or in /usr/bin).
#
#   root:     apt-get update + apt-get install redis-server (the tests never use the packaged
#             service; it is stopped where an init system started it)
#   non-root: prints what to run and fails
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
  echo "install-redis: redis-server already present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-redis: redis-server missing; run as root: apt-get install -y redis-server" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends redis-server >/dev/null
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl stop redis-server 2>/dev/null || true
fi

if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
  echo "install-redis: redis-server installed ($(redis-server --version | cut -d' ' -f3))"
else
  echo "install-redis: redis-server still missing" >&2
  exit 1
fi

#!/usr/bin/env bash
# Install Debian's chromium for tests/e2e/test_console.py (the web console driven by Playwright for
# Python with executable_path=shutil.which("chromium"); Playwright's own browser download is never
# used). Idempotent: does nothing when chromium is already on PATH.
#
#   root:     apt-get update + apt-get install chromium (plus fonts so the screenshot has text)
#   non-root: prints what to run and fails
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  echo "install-chromium: chromium already present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-chromium: chromium missing; run as root: apt-get install -y chromium" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null

if command -v chromium >/dev/null 2>&1; then
  echo "install-chromium: chromium installed ($(chromium --version 2>/dev/null || echo unknown))"
else
  echo "install-chromium: chromium still missing" >&2
  exit 1
fi

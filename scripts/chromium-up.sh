#!/usr/bin/env bash
# chromium-up.sh makes sure Debian's chromium is installed, for the tests that drive
# the fake hub's web console in a headless browser (fakehub/console_test.go). It is
# idempotent: when a chromium binary is already on PATH it does nothing.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi

echo "chromium-up: installing Debian's chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
echo "chromium-up: $(chromium --version 2>/dev/null || echo 'chromium installed')" >&2

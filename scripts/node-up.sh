#!/usr/bin/env bash
# node-up.sh makes sure Node.js and npm are installed, for the check of the fake hub
# against Microsoft's Node.js device SDK (fakehub/sdkcheck_test.go, which runs npm ci in
# scripts/sdkcheck). It is idempotent: when node and npm are on PATH it does nothing;
# otherwise it installs Debian's nodejs and npm.
set -euo pipefail

if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  exit 0
fi

echo "node-up: installing Debian's nodejs and npm" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq nodejs npm >/dev/null
echo "node-up: node $(node --version 2>/dev/null || echo '?'), npm $(npm --version 2>/dev/null || echo '?')" >&2

#!/usr/bin/env bash
# test.sh is the project's test command (README, `make test`, .ci/run).
# It prepares the machine (Docker Engine when tests need it), runs the static
# checks and the whole Go test suite, fuzz seed corpora included.
set -euo pipefail
cd "$(dirname "$0")/.."

export TESTCONTAINERS_RYUK_DISABLED=true
export TESTCONTAINERS_HOST_OVERRIDE=localhost

# Docker-backed tests run against a real engine: install and start one when absent.
# With OUTPOST_DOCKER_REQUIRED set, a test that finds no engine fails instead of skipping.
# Set OUTPOST_SKIP_DOCKER=1 to run without Docker (those tests then say they skip).
if [ "${OUTPOST_SKIP_DOCKER:-}" != 1 ]; then
  scripts/docker-up.sh
  export OUTPOST_DOCKER_REQUIRED=1
fi

# The fake hub's web console is tested in headless Chromium (fakehub/console_test.go):
# install Debian's chromium when absent. OUTPOST_SKIP_CHROMIUM=1 skips that test instead.
if [ "${OUTPOST_SKIP_CHROMIUM:-}" != 1 ]; then
  scripts/chromium-up.sh
  export OUTPOST_CHROMIUM_REQUIRED=1
fi

# The fake hub is checked against Microsoft's Node.js device SDK (fakehub/sdkcheck_test.go):
# install Node.js and npm when absent. OUTPOST_SKIP_SDKCHECK=1 skips that check instead.
if [ "${OUTPOST_SKIP_SDKCHECK:-}" != 1 ]; then
  scripts/node-up.sh
  export OUTPOST_SDKCHECK_REQUIRED=1
fi

echo "== static checks"
go vet ./...
scripts/check-docs.sh

echo "== go test (packages)"
# The features run on their own afterwards: their edge agents manage every container
# labelled as Outpost's on the engine, so they must not overlap other Docker tests.
packages=$(go list ./... | grep -v '/features')
OUTPOST_DEFER_BROWSER_TESTS=1 go test -count=1 -timeout 20m $packages 2>&1 | tee /tmp/outpost-test.log

echo "== go test: the web console in headless Chromium, alone (network changes abort its requests)"
go test -count=1 -timeout 10m -run '^TestConsole' ./fakehub 2>&1 | tee -a /tmp/outpost-test.log

echo "== go test ./features/... (Gherkin scenarios, process and Docker backends)"
# -v so that the report lists every scenario by name; the full log is kept.
go test -count=1 -timeout 20m -v ./features/... >/tmp/outpost-features.log 2>&1 || status=$?
grep -E '^\s*--- (PASS|FAIL|SKIP)|skipping|^(ok|FAIL|PASS)\b' /tmp/outpost-features.log || true
if [ "${status:-0}" != 0 ]; then
  echo "features failed; the full log follows" >&2
  tail -200 /tmp/outpost-features.log >&2
  exit "$status"
fi

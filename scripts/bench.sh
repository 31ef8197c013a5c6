#!/usr/bin/env bash
# bench.sh is `make bench`: it installs the reference broker (Mosquitto, Debian's
# package) when missing, starts a Docker Engine (scripts/docker-up.sh), builds the
# binaries and the images the agent scenarios deploy, and runs the benchmark harness
# (scripts/bench), which writes docs/benchmarks.md and docs/benchmarks.png.
#
# Environment: BENCH_RUNS (runs per case, default 5), BENCH_QUICK=1 (short runs),
# BENCH_SCENARIOS (comma-separated subset), BENCH_PROFILE=auto|always|never.
# Arguments are passed to the harness (go run ./scripts/bench -h lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  echo "== installing mosquitto (Debian package) as the reference broker"
  # Keep the package's own service from starting: the harness runs its own instances.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq mosquitto >/dev/null
fi

echo "== building bin/ (and the profiling build of the hub, .outpost/bin/profhub)"
# All from the same tree, at the same moment: the profile is of the code measured.
mkdir -p bin .outpost/bin
CGO_ENABLED=0 "$GO" build -trimpath -o bin/ ./cmd/...
CGO_ENABLED=0 "$GO" build -trimpath -o .outpost/bin/ ./scripts/bench/profhub

# The agent scenarios also run on Docker: the engine is started (installed first on a
# fresh machine) as for the tests. Where that fails the report says the Docker half was
# skipped. Their images are built from the same tree.
scripts/docker-up.sh || echo "== no Docker Engine: the agent scenarios run on the process runtime only" >&2
if docker info >/dev/null 2>&1; then
  echo "== building the images the agent scenarios deploy"
  scripts/images.sh edgehub tempsensor filter
fi

echo "== running the benchmarks (docs/benchmarks.md)"
export BENCH_COMMAND=${BENCH_COMMAND:-scripts/bench.sh}
"$GO" run ./scripts/bench "$@"

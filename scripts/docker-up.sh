#!/usr/bin/env bash
# docker-up.sh makes sure a Docker Engine answers on /var/run/docker.sock.
# On a fresh Debian machine it installs Debian's docker.io package and starts
# dockerd in the background (no systemd needed). It is idempotent: when an
# engine already answers it does nothing.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-up: installing Debian's docker.io" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

echo "docker-up: starting dockerd" >&2
mkdir -p /var/log
# The daemon outlives this script: it must not inherit our descriptors beyond stdio (a
# caller's lock file, say `flock LOCK scripts/docker-up.sh`, would stay held for as long as
# dockerd runs).
(
  for fd in /proc/self/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
  exec nohup setsid dockerd --storage-driver=overlay2 </dev/null >/var/log/outpost-dockerd.log 2>&1
) &

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "docker-up: engine ready ($(docker version --format '{{.Server.Version}}'))" >&2
    exit 0
  fi
  sleep 0.5
done
echo "docker-up: dockerd did not come up; see /var/log/outpost-dockerd.log" >&2
tail -20 /var/log/outpost-dockerd.log >&2 || true
exit 1

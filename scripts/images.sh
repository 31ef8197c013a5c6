#!/usr/bin/env bash
# images.sh builds a FROM scratch image per binary in cmd/ (static, CGO_ENABLED=0),
# tagged outpost/<name>:${TAG:-dev}. No base image is pulled: nothing but the
# binary goes into the image. Usage: scripts/images.sh [name ...]
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${TAG:-dev}
scripts/docker-up.sh

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for d in cmd/*/; do names+=("$(basename "$d")"); done
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
for name in "${names[@]}"; do
  rm -rf "${ctx:?}"/*
  CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/$name" "./cmd/$name"
  mkdir -p "$ctx/tmp"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY $name /$name
COPY tmp /tmp
LABEL org.opencontainers.image.title="outpost-$name" net.outpost.image="$name"
ENTRYPOINT ["/$name"]
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build -q -t "outpost/$name:$TAG" "$ctx" >/dev/null
  echo "built outpost/$name:$TAG"
done

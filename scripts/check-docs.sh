#!/usr/bin/env bash
# check-docs.sh fails when a Go package has no package doc comment (style.md rule 10).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=$(go list -f '{{if not .Doc}}{{.ImportPath}}{{end}}' ./... | grep -v '^$' || true)
if [ -n "$missing" ]; then
  echo "packages without a doc comment:" >&2
  echo "$missing" >&2
  exit 1
fi
# runtime/ holds folders only: a package named "runtime" would shadow the standard library.
if ls runtime/*.go >/dev/null 2>&1; then
  echo "runtime/ must not contain Go files" >&2
  exit 1
fi
echo "check-docs: every package documented"

#!/usr/bin/env bash
# CI: the committed bundle (web/dist, built into the `jixiao` binary) is
# what the sources build. Installs web/'s locked packages, regenerates the
# protobuf code from proto/ with buf, type-checks, builds with Vite (a
# deterministic build: content-hashed names, no source maps, no dates) and
# fails when web/dist differs from the commit by one byte or one file.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/buf ]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
(cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null && npm run --silent build >/dev/null)
if ! git diff --quiet -- web/dist || [ -n "$(git ls-files --others --exclude-standard -- web/dist)" ]; then
  echo "web/dist does not match its sources; run (cd web && npm ci && npm run build) and commit web/dist:" >&2
  git status --short -- web/dist >&2
  exit 1
fi
echo "web/dist: rebuilt from the sources, identical ($(git ls-files -- web/dist | wc -l) files)"

#!/usr/bin/env bash
# The dashboard in a real browser: installs what the test needs when it is
# missing (Debian's chromium and a CJK font, the web/ packages, buf's
# generated code), builds the debug `jixiao` unless JIXIAO_BIN names one,
# and runs web/tests/browser.test.mjs against `jixiao demo` on a free port.
# Screenshots and measurements: target/dashboard/.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '\n== %s\n' "$*"; }

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ] || ! fc-list ':lang=zh' 2>/dev/null | grep -q .; then
  say "installing chromium and fonts-noto-cjk (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
fi
if [ ! -x node_modules/.bin/buf ]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
if [ ! -d web/node_modules ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  (cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
(cd web && npm run --silent generate)
if [ -z "${JIXIAO_BIN:-}" ]; then
  cargo build --quiet --bin jixiao
  export JIXIAO_BIN=target/debug/jixiao
fi
export JIXIAO_EXPECT_LINK=${JIXIAO_EXPECT_LINK:-1}
node --test --test-reporter=spec web/tests/browser.test.mjs

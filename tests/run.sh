#!/usr/bin/env bash
# The test command: every unit, store and end-to-end test of the workspace,
# on SQLite and on PostgreSQL, then the dashboard in a real browser.
# Installs the Python client the caller-guide test uses and makes sure
# PostgreSQL is up (starting or installing it on a Debian machine when
# needed).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

ensure_python_client() {
  if ! python3 -c 'import grpc, grpc_reflection, grpc_health, grpc_status' 2>/dev/null; then
    say "installing the Python gRPC client (tests/python/requirements.txt)"
    python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  fi
}

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

ensure_postgres() {
  if [ -n "${JIXIAO_TEST_POSTGRES_URL:-}" ]; then return 0; fi
  if ! pg_up; then
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
      say "installing PostgreSQL"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    say "starting PostgreSQL"
    for version in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  if pg_up; then
    export JIXIAO_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
    # Drop databases that earlier, interrupted runs left behind.
    psql -h 127.0.0.1 -U postgres -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'jxtest\_%'" 2>/dev/null |
      while read -r db; do psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done
  elif [ -n "${CI:-}" ]; then
    echo "PostgreSQL is not reachable at 127.0.0.1:5432; CI must test it" >&2
    exit 1
  else
    echo "warning: PostgreSQL is not reachable; running the SQLite half only" >&2
  fi
}

# The replica test (services/suite/tests/replicas.rs) balances over
# replicas with Debian's nginx, started by the test with its own
# configuration; the package's own service is not used.
ensure_nginx() {
  if ! command -v nginx >/dev/null 2>&1; then
    say "installing nginx"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null
  fi
}

. tests/toolchain.sh
ensure_toolchain
ensure_python_client
ensure_postgres
ensure_nginx
# The Kubernetes overlay rendered with kustomize and validated against the
# Kubernetes schemas, offline (unpacks Debian's kubectl and installs
# kubernetes-validate when missing; tests/tests/e2e/deploy.rs compares it
# with compose).
say "Kubernetes manifests (deploy/kubernetes/check.sh)"
deploy/kubernetes/check.sh
say "cargo test --workspace (PostgreSQL: ${JIXIAO_TEST_POSTGRES_URL:-skipped})"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace "$@" 2>&1 | tee "$log"
# The dashboard in Debian's chromium against the demo (installs chromium,
# fonts and web/'s packages when missing; screenshots in target/dashboard).
say "dashboard in a real browser (web/tests/run.sh)"
web/tests/run.sh 2>&1 | tee -a "$log"
# One closing line for the whole run: cargo's test results and node's.
{
  grep -E '^test result:' "$log" | awk '{print $4, $6, $8}'
  awk '/^ℹ pass /{p=$3} /^ℹ fail /{f=$3} /^ℹ skipped /{i=$3} END {print p+0, f+0, i+0}' "$log"
} | awk '{p += $1; f += $2; i += $3} END {printf "\ntotal: %d passed, %d failed, %d skipped\n", p, f, i}'

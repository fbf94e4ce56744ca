#!/usr/bin/env bash
# Renders the production overlay (deploy/kubernetes) offline and validates
# every object against the Kubernetes JSON schemas. Run by tests/run.sh;
# tests/tests/e2e/deploy.rs checks the same files against compose and the
# code. Installs what it needs when missing:
#  - Debian's kubernetes-client (kubectl 1.20 with kustomize 2.0.3), unpacked
#    into target/kubernetes/debian by `apt-get download` rather than
#    installed, so that it never replaces another kubectl. It is the
#    renderer every Debian machine has, so the files keep to what it reads.
#  - kubernetes-validate from PyPI (requirements.txt beside this file),
#    which ships the schemas.
# A kubectl already on PATH (a newer kustomize) renders too, and must give
# the same objects (the ConfigMap's name hash aside: the hash function
# changed between kustomize versions).
set -euo pipefail
cd "$(dirname "$0")/../.."
overlay=deploy/kubernetes/overlays/production
out=target/kubernetes
mkdir -p "$out"

debian_kubectl=$out/debian/usr/bin/kubectl
if [ ! -x "$debian_kubectl" ]; then
  echo "unpacking Debian's kubernetes-client into $out/debian"
  deb=$(mktemp -d)
  download() { (cd "$deb" && apt-get download -qq kubernetes-client >/dev/null 2>&1); }
  download || { apt-get update -qq >/dev/null && download; } || {
    echo "cannot download Debian's kubernetes-client (apt-get download)" >&2
    exit 1
  }
  dpkg-deb -x "$deb"/kubernetes-client_*.deb "$out/debian"
  rm -rf "$deb"
fi

if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
  echo "installing kubernetes-validate (deploy/kubernetes/requirements.txt)"
  python3 -m pip install --quiet --disable-pip-version-check -r deploy/kubernetes/requirements.txt
fi

# kustomize >= 2.1 says `bases:` is deprecated; the overlay keeps it for 2.0.3.
render() {
  "$1" kustomize "$overlay" >"$2" 2>"$out/stderr" || { cat "$out/stderr" >&2; exit 1; }
  grep -v "'bases' is deprecated" "$out/stderr" >&2 || true
}
render "$debian_kubectl" "$out/production.yaml"
client_version() { "$1" version --client 2>/dev/null | sed -n 's/.*GitVersion:"\([^"]*\)".*/\1/p; s/^Client Version: //p' | head -n 1; }
renderers="Debian's kubectl $(client_version "$debian_kubectl")"
if command -v kubectl >/dev/null 2>&1; then
  render kubectl "$out/production-path-kubectl.yaml"
  python3 - "$out/production.yaml" "$out/production-path-kubectl.yaml" <<'PY'
import re, sys, yaml
def objects(path):
    text = re.sub(r"(jixiao-config)-[a-z0-9]{10}\b", r"\1", open(path).read())
    return sorted((d for d in yaml.safe_load_all(text) if d),
                  key=lambda d: (d["kind"], d["metadata"]["name"]))
a, b = objects(sys.argv[1]), objects(sys.argv[2])
if a != b:
    sys.exit(f"{sys.argv[1]} and {sys.argv[2]} differ: the kustomize versions render the overlay differently")
PY
  renderers="$renderers and $(command -v kubectl) $(client_version kubectl)"
fi

# 1.27: the release in which gRPC probes became GA; 1.37: the
# newest schemas the package ships. --strict refuses unknown fields.
for version in 1.27.0 1.37.0; do
  python3 -m kubernetes_validate --strict --quiet -k "$version" "$out/production.yaml"
done
rm -f "$out/stderr"
count=$(grep -c '^kind:' "$out/production.yaml")
echo "kubernetes: $count objects in $out/production.yaml, rendered by $renderers, valid against the 1.27 and 1.37 schemas"

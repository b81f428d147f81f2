#!/usr/bin/env bash
# Build the services' virtual environment in two steps: the image's builder stage runs them
# (infra/docker/Dockerfile), and so do the tests (tests/image/), from the same lock.
#
#   build_services_venv.sh deps VENV TF_SOURCE      new venv: the services lock, TF's protos
#   build_services_venv.sh package VENV WHEEL       radiounet itself, then the import check
#
# TF_SOURCE is a tensorflow(-cpu) wheel or an installed tensorflow/ folder: only its
# generated *_pb2 modules are taken (extract_tf_protos.py), never the runtime. Every
# package goes in with --no-deps: the lock is complete on purpose.
# PYTHON (default python3) creates the venv and runs pip for it (pip --python VENV/bin/python),
# so the venv itself holds no pip, setuptools or wheel. pip's own settings apply
# (PIP_INDEX_URL, PIP_NO_INDEX, PIP_FIND_LINKS, ...).
set -euo pipefail

usage() {
  echo "usage: $0 deps VENV TF_SOURCE | package VENV WHEEL" >&2
  exit 2
}
[ "$#" -eq 3 ] || usage
step=$1 venv=$2 input=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}

pip_install() {
  "$python" -m pip --python "$venv/bin/python" --disable-pip-version-check \
    install --no-deps --no-input "$@"
}

case $step in
  deps)
    if [ -e "$venv" ]; then
      echo "$0: $venv already exists" >&2
      exit 2
    fi
    "$python" -m venv --without-pip "$venv"
    pip_install --requirement "$here/requirements-services.lock"
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    "$venv/bin/python" "$here/extract_tf_protos.py" "$input" "$site"
    # numpy's and scipy's own test suites (~50 MB) are never imported by the services.
    find "$site/numpy" "$site/scipy" -type d -name tests -prune -exec rm -rf {} +
    ;;
  package)
    [ -x "$venv/bin/python" ] || { echo "$0: no venv at $venv (run the deps step)" >&2; exit 2; }
    pip_install "$input"
    # Fail the build rather than a pod: every service imports, without the TF runtime.
    "$venv/bin/python" "$here/check_services_venv.py"
    ;;
  *)
    usage
    ;;
esac

#!/usr/bin/env bash
# Install everything koral-play needs on a Debian 12 machine (as root) and a venv in ./.venv.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# The package list has one home, shared with `koral-play doctor`: koral_ansible/data/host-packages.txt
./scripts/install-debs.sh koral_ansible/data/host-packages.txt

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.koral-setup-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing koral-ansible and its test tools into .venv" >&2
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi
# A Kubernetes bundle for the default version, so `koral-play create` works with no network:
# the recorded one if any, else the demo bundle (test-double control plane; see the script).
.venv/bin/python scripts/offline_bundle.py >/dev/null
echo "setup: ready ($(.venv/bin/koral-play --version))" >&2

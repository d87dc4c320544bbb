#!/usr/bin/env bash
# The whole test suite: set-up, linters, unit tests, then integration tests on real local nodes.
# Usage: scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# What only the tests need (the console's browser tests: Chromium), kept off the first command's list.
./scripts/install-debs.sh tests/test-packages.txt
export PATH="$PWD/.venv/bin:$PATH"

echo "== lint: ruff, mypy" >&2
ruff check koral_ansible tests bench
mypy
echo "== tests" >&2
pytest -ra -p no:cacheprovider --durations=40 "$@"

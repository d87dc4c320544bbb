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
# Two workers (KORAL_TEST_WORKERS): a cluster create keeps this machine's CPUs busy for about a
# third of its time (it waits on nodes, SSH and the API), so two test modules at once nearly halve
# the run. A module stays on one worker (its clusters are module fixtures); tests/conftest.py starts
# the longest ones first.
pytest -ra -p no:cacheprovider --durations=40 -n "${KORAL_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"

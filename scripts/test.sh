#!/usr/bin/env bash
# Install covalent with its test dependencies, then lint, type-check and run the tests.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k seed`).
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet --disable-pip-version-check -e '.[test]'
python -m pip install --quiet --disable-pip-version-check ./tests/plugin_package  # a plugin in a package of its own (test_plugins.py)
bash scripts/services/sshd.sh install     # OpenSSH server for the SSH executor's tests
bash scripts/services/rsync.sh install     # rsync for the Rsync file-transfer strategy's tests
bash scripts/services/chromium.sh install  # Debian's Chromium for the web UI's browser tests (tests/ui)
bash scripts/services/slurm.sh install    # single-node Slurm for the Slurm executor's tests
bash scripts/services/postgres.sh install # PostgreSQL for the store's tests on PostgreSQL
export COVALENT_PG_DIR=${COVALENT_PG_DIR:-$(mktemp -u /tmp/covalent-pg-ci.XXXXXX)}
trap 'bash scripts/services/slurm.sh down; bash scripts/services/postgres.sh destroy' EXIT
bash scripts/services/slurm.sh up
# The tests make a database of their own on it for each server (tests/conftest.py).
COVALENT_TEST_POSTGRES_URL=$(bash scripts/services/postgres.sh up)
export COVALENT_TEST_POSTGRES_URL
python -m ruff check covalent tests
python -m mypy
python -m pytest "$@"

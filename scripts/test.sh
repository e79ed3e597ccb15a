#!/usr/bin/env bash
# Install what the tests need, then run the whole suite (as root). pytest's own
# exit status is the result: "no tests ran" (5) fails like any other error.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
PATH="$PWD/.venv/bin:${PYCONTAINERD_GO_TOOLS:-/var/cache/pycontainerd-test/go}/bin:$PATH" exec .venv/bin/python -m pytest -q "$@"

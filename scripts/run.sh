#!/usr/bin/env bash
# Install what is missing, then run the daemon in the foreground (flags pass through).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/pycontainerd "$@"

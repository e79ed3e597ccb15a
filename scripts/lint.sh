#!/usr/bin/env bash
# Static checks: ruff (lint and format) and mypy (settings in pyproject.toml;
# the generated pycontainerd/api is excluded). CI runs this before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

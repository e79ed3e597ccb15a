"""Programs the tests take from another Debian release through the scripts/fetch-*.sh scripts.

Each script downloads and unpacks its packages into a cache (once, with a private
apt configuration; nothing is installed) and prints the paths of the files asked
for, one per line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
#: A fetch script's exit code when the package registry has no such package for this machine.
REGISTRY_SAID_NO = 3
FETCH_TIMEOUT = 300


def fetch(script: str, *args: str) -> list[Path]:
    """Run ``scripts/<script>`` and return the paths it printed.

    Skips the calling test when the package registry has no such package for
    this machine (a real limit); fails it on any other error.
    """
    path = SCRIPTS / script
    try:
        result = subprocess.run(
            ["bash", str(path), *args], capture_output=True, text=True, timeout=FETCH_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script} did not finish in {FETCH_TIMEOUT}s (network?)")
    if result.returncode == REGISTRY_SAID_NO:
        pytest.skip(f"{script} cannot fetch on this machine: {result.stderr.strip()}")
    if result.returncode != 0:
        pytest.fail(f"{script} failed ({result.returncode}):\n{result.stderr}")
    return [Path(line) for line in result.stdout.split()]

"""The README's first SDK example, run verbatim against a test daemon and registry."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ctr_env import CtrRunEnv

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    """The first ```python block after the "## The Python SDK" heading."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n## The Python SDK\n", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "README's SDK section has no ```python block"
    return found.group(1)


def test_readme_example_runs(daemon, busybox_pushed, tmp_path):  # type: ignore[no-untyped-def]
    program = tmp_path / "example.py"
    program.write_text(readme_example())
    env = {k: v for k, v in os.environ.items() if "CONTAINERD_" not in k}
    env.update(
        PYCONTAINERD_ADDRESS=str(daemon.address),
        IMAGE=busybox_pushed.ref,
        PYTHONPATH=str(REPO_ROOT),
    )
    with CtrRunEnv(daemon, namespace="sdk-example"):
        result = subprocess.run(
            [sys.executable, str(program)], capture_output=True, text=True, env=env, timeout=120
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"pulled {busybox_pushed.ref}",
        "exec printed 'inside', exit code 3",
        "task printed 'hello from pycontainerd', exit code 137",
        "cleaned up: True",
    ]

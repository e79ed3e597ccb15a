"""pyctr run by the tests as a user runs it, and what ctr shows of the content store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.daemon import Ctr

REPO_ROOT = Path(__file__).resolve().parents[2]


class Pyctr:
    """Runs ``python -m ctr.main`` against one daemon and namespace."""

    def __init__(self, address: Path | str, namespace: str) -> None:
        self.address = str(address)
        self.namespace = namespace

    def run(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if "CONTAINERD_" not in k}
        cmd = [sys.executable, "-m", "ctr.main", "-a", self.address, "-n", self.namespace]
        return subprocess.run(
            [*cmd, *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO_ROOT,
            env=env,
        )

    def ok(self, *args: str, **kwargs) -> str:  # type: ignore[no-untyped-def]
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, f"pyctr {' '.join(args)} failed:\n{result.stderr}"
        return result.stdout

    def json(self, *args: str) -> object:
        return json.loads(self.ok(*args, "--format", "json"))

    def fails(self, *args: str) -> str:
        """The one-line error of a failing command (exit 1, no traceback)."""
        result = self.run(*args)
        assert result.returncode == 1, f"pyctr {' '.join(args)}: exit {result.returncode}"
        assert result.stderr.startswith("pyctr: ") and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr
        return result.stderr


def content_labels(ctr: Ctr, namespace: str) -> dict[str, dict[str, str]]:
    """``ctr content ls`` as digest -> labels (the labels column is the last one)."""
    found = {}
    for line in ctr.ok("content", "ls", namespace=namespace).splitlines()[1:]:
        fields = line.split()
        labels = {} if fields[-1] == "-" else dict(kv.split("=", 1) for kv in fields[-1].split(","))
        found[fields[0]] = labels
    return found

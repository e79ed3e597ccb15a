"""A real command-line client run by the tests, with its assertions in one place."""

from __future__ import annotations

import subprocess
from typing import Any


class CommandLine:
    """Subclasses say how to run the program (`run`); `ok` and `fails` check the outcome."""

    name = "command"

    def run(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        raise NotImplementedError

    def ok(self, *args: str, **kwargs: Any) -> str:
        """Stdout of a run that must succeed; fails the test with stderr otherwise."""
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, (
            f"{self.name} {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stderr.decode(errors='replace')}"
        )
        return result.stdout.decode(errors="replace")

    def fails(self, *args: str, **kwargs: Any) -> str:
        """Stderr of a run that must fail."""
        result = self.run(*args, **kwargs)
        assert result.returncode != 0, f"{self.name} {' '.join(args)} unexpectedly succeeded"
        return result.stderr.decode(errors="replace")

"""containerd 2's ctr (built from the Go module proxy as ``ctr2``) against a daemon's socket."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.daemon import Ctr


class Ctr2(Ctr):
    """Runs ``ctr2``: images pull/push/import/export/tag go through Transfer and Streaming."""

    name = "ctr2"

    def __init__(self, address: Path, namespace: str = "default") -> None:
        self.address = address
        self.namespace = namespace
        self.binary = shutil.which("ctr2")
        if self.binary is None:
            raise RuntimeError("ctr2 is not installed: run scripts/go-tools.sh")

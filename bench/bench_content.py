"""Content ingest and read through the real ctr: pycontainerd beside containerd."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from bench.common import Row, containerd_daemon, print_table, pycontainerd_daemon, timed

SIZE = 256 << 20


def _ingest_and_read(address: Path, source: Path, digest: str) -> tuple[float, float]:
    ctr = ["ctr", "-a", str(address)]
    with open(source, "rb") as stdin:
        write = timed(
            lambda: subprocess.run(
                [*ctr, "content", "ingest", "--expected-digest", digest, "bench"],
                stdin=stdin,
                check=True,
                capture_output=True,
            )
        )
    read = timed(
        lambda: subprocess.run(
            [*ctr, "content", "get", digest], check=True, stdout=subprocess.DEVNULL
        )
    )
    return SIZE / write / 1e6, SIZE / read / 1e6


def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "blob"
        source.write_bytes(os.urandom(SIZE))
        digest = "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()
        with pycontainerd_daemon() as daemon:
            ours = _ingest_and_read(daemon.address, source, digest)
        with containerd_daemon() as address:
            ref = _ingest_and_read(address, source, digest) if address else (None, None)
    print_table(
        f"content store, one {SIZE >> 20} MiB blob through ctr",
        [
            Row("ctr content ingest", ours[0], ref[0], "MB/s", "containerd 1.6"),
            Row("ctr content get", ours[1], ref[1], "MB/s", "containerd 1.6"),
        ],
    )

"""A real containerd (Debian's 1.6, or 2.x built from the Go module proxy) on a private
root and socket, for tests and benchmarks that compare with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.procs import stop_process

#: containerd 2.x and its Go shim, built from the Go module proxy by scripts/go-tools.sh.
GO_TOOLS_BIN = (
    Path(os.environ.get("PYCONTAINERD_GO_TOOLS", "/var/cache/pycontainerd-test/go")) / "bin"
)
CONTAINERD2 = "containerd2"
CONTAINERD2_SHIM = "containerd2-shim-runc-v2"


def _containerd2(base: Path) -> tuple[str, dict[str, str]] | None:
    """containerd 2.x's daemon, with a PATH on which its shim has the name it looks for."""
    binary = shutil.which(CONTAINERD2) or shutil.which(str(GO_TOOLS_BIN / CONTAINERD2))
    shim = shutil.which(CONTAINERD2_SHIM) or shutil.which(str(GO_TOOLS_BIN / CONTAINERD2_SHIM))
    if binary is None or shim is None:
        return None
    shim_dir = base / "bin"
    shim_dir.mkdir()
    (shim_dir / "containerd-shim-runc-v2").symlink_to(shim)
    return binary, {**os.environ, "PATH": f"{shim_dir}:{os.environ.get('PATH', '')}"}


@contextmanager
def containerd_daemon(version: int = 1, base: Path | None = None) -> Iterator[Path | None]:
    """A real containerd on a private root and socket (None if it is not installed).

    ``version`` 1 is Debian's containerd 1.6; 2 is containerd 2.x with its Go shim.
    """
    base = Path(tempfile.mkdtemp(prefix=f"ctd{version}-", dir=base))
    if version == 1:
        found = shutil.which("containerd")
        started = (found, dict(os.environ)) if found else None
    else:
        started = _containerd2(base)
    if started is None:
        shutil.rmtree(base, ignore_errors=True)
        yield None
        return
    binary, env = started
    address = base / "containerd.sock"
    config = base / "config.toml"
    config.write_text(
        f'version = 2\nroot = "{base}/root"\nstate = "{base}/state"\n'
        f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{address}"\n[ttrpc]\n  address = "{address}.ttrpc"\n'
    )
    log = open(base / "containerd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [binary, "-c", str(config)], stdout=log, stderr=log, start_new_session=True, env=env
    )
    try:
        deadline = time.monotonic() + 20
        while not address.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield address
    finally:
        stop_process(proc, 15)
        log.close()
        subprocess.run(["umount", "-R", str(base / "root")], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)

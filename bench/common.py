"""What the benchmarks share: daemons started privately, timing, a result table."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.daemon import DaemonProcess


@dataclass
class Row:
    what: str
    ours: float
    reference: float | None
    unit: str
    reference_name: str

    def render(self) -> str:
        ref = f"{self.reference:10.2f}" if self.reference is not None else "       n/a"
        ratio = f"{self.ours / self.reference:6.2f}x" if self.reference else "      -"
        return f"{self.what:<44} {self.ours:10.2f} {ref} {self.unit:<6} {ratio}  ({self.reference_name})"


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n== {title}")
    print(f"{'measure':<44} {'ours':>10} {'reference':>10} {'unit':<6} {'ratio':>7}")
    for row in rows:
        print(row.render())


def median_of(samples: list[float]) -> float:
    return statistics.median(samples)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@contextmanager
def pycontainerd_daemon(shim_pool_size: int | None = None) -> Iterator[DaemonProcess]:
    """Our daemon with its defaults (`shim_pool_size` set: that many containers per shim)."""
    # containerd beside it logs at its default level (info); so does this one.
    daemon = DaemonProcess(log_level="info", shim_pool_idle=None, shim_pool_size=shim_pool_size)
    try:
        yield daemon.start()
    finally:
        daemon.cleanup()


@contextmanager
def containerd_daemon(name: str = "containerd") -> Iterator[Path | None]:
    """A containerd (Debian's, or ``containerd2`` built from the module proxy) on a private
    root and socket, if it is installed."""
    binary = shutil.which(name)
    if binary is None:
        yield None
        return
    base = Path(tempfile.mkdtemp(prefix="ctd-"))
    address = base / "containerd.sock"
    config = base / "config.toml"
    config.write_text(
        f'version = 2\nroot = "{base}/root"\nstate = "{base}/state"\n'
        f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{address}"\n[ttrpc]\n  address = "{address}.ttrpc"\n'
    )
    log = open(base / "containerd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [binary, "-c", str(config)], stdout=log, stderr=log, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 20
        while not address.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        subprocess.run(["umount", "-R", str(base / "root")], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)

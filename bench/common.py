"""What the benchmarks share: daemons started privately, timing, a result table."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.daemon import DaemonProcess
from tests.support.real_containerd import containerd_daemon  # noqa: F401 - the benchmarks' import


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


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes sharing them."""
    return _proc_field(Path(f"/proc/{pid}/smaps_rollup"), "Pss:")


def rss_kib(pid: int) -> int:
    return _proc_field(Path(f"/proc/{pid}/status"), "VmRSS:")


def _proc_field(path: Path, name: str) -> int:
    try:
        text = path.read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(name):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pids: list[int], *, quiet: float = 0.3, timeout: float = 60.0) -> None:
    """Until the processes used (almost) no CPU for ``quiet`` seconds.

    A daemon may still be deleting what a removal gave back (ours deletes
    snapshot trees in the background): a timed run started then would pay
    for it, whichever daemon it measures.
    """
    deadline = time.monotonic() + timeout

    def total() -> float:
        return sum(cpu_seconds(pid) for pid in pids)

    last, since = total(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = total()
        if now - last > 0.02:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def pids_of(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def median_of(samples: list[float]) -> float:
    return statistics.median(samples)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@contextmanager
def pycontainerd_daemon(
    shim_pool_size: int | None = None, base: Path | None = None, extra_config: str = ""
) -> Iterator[DaemonProcess]:
    """Our daemon with its defaults (`shim_pool_size` set: that many containers per shim;
    `extra_config`: TOML added to its config file)."""
    # containerd beside it logs at its default level (info); so does this one.
    daemon = DaemonProcess(
        base=Path(tempfile.mkdtemp(prefix="pcd-", dir=base)) if base else None,
        extra_config=extra_config,
        log_level="info",
        shim_pool_idle=None,
        shim_pool_size=shim_pool_size,
    )
    try:
        yield daemon.start()
    finally:
        daemon.cleanup()


@contextmanager
def tmpfs_dir(size: str) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` for daemon roots, unmounted and removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="bench-roots-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-R", "-l", str(path)], check=False)
        path.rmdir()


def containerd_pid(address: Path) -> int:
    """The pid of the containerd that `containerd_daemon` started at ``address``."""
    return pids_of(f"containerd.* -c {address.parent}/config.toml")[0]

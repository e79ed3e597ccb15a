"""What the benchmarks share: daemons started privately, timing, a result table."""

from __future__ import annotations

import os
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
    shim_pool_size: int | None = None, base: Path | None = None
) -> Iterator[DaemonProcess]:
    """Our daemon with its defaults (`shim_pool_size` set: that many containers per shim)."""
    # containerd beside it logs at its default level (info); so does this one.
    daemon = DaemonProcess(
        base=Path(tempfile.mkdtemp(prefix="pcd-", dir=base)) if base else None,
        log_level="info",
        shim_pool_idle=None,
        shim_pool_size=shim_pool_size,
    )
    try:
        yield daemon.start()
    finally:
        daemon.cleanup()


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
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        subprocess.run(["umount", "-R", str(base / "root")], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


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

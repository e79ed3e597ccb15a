"""Container start latency, throughput and memory: pycontainerd beside containerd and bare runc.

The same real `ctr` drives both daemons; each runs the busybox test image
imported from an OCI archive. Latency runs alternate between the daemons, all
up at once; the rest is measured one daemon at a time. Memory is the
proportional set size (PSS) of the
daemon and of the shims while 50 containers run. Our daemon runs with its
defaults (pool shims), and again with a shim per container, as containerd runs
its Go shim.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import (
    Row,
    containerd_daemon,
    containerd_pid,
    pids_of,
    print_table,
    pss_kib,
    pycontainerd_daemon,
    timed,
)
from pycontainerd.shim_v2.pool import DEFAULT_POOL_SIZE
from tests.support.daemon import DaemonProcess
from tests.support.images import busybox_binary, busybox_image, write_oci_archive

IMAGE = "docker.io/library/busybox-bench:latest"
LATENCY_RUNS = 20
MANY = 50
PARALLEL = 8
GROUP = "io.containerd.runc.v2.group=bench"


def _ctr(address: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["ctr", "-a", str(address), "-n", "bench", *args], capture_output=True, check=check
    )


def _paired_latencies(addresses: dict[str, Path]) -> dict[str, list[float]]:
    """`ctr run --rm true` on each daemon in turn, who goes first alternating, so that
    drift in the machine's state (caches, writeback, other load) weighs on all alike."""
    samples: dict[str, list[float]] = {name: [] for name in addresses}
    for i in range(LATENCY_RUNS):
        turn = list(addresses.items())
        if i % 2:
            turn.reverse()
        for name, address in turn:
            run = ("run", "--rm", IMAGE, f"lat-{i}", "true")
            samples[name].append(timed(lambda address=address, run=run: _ctr(address, *run)))
    return samples


def _summary(latencies: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(latencies) * 1000,
        "p90": statistics.quantiles(latencies, n=10)[-1] * 1000,
    }


def _start_many(address: Path, prefix: str, parallel: int, extra: tuple[str, ...] = ()) -> float:
    def start(i: int) -> None:
        _ctr(address, "run", "-d", *extra, IMAGE, f"{prefix}-{i}", "sleep", "3600")

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(start, range(MANY)))
    return time.perf_counter() - started


def _remove_all(address: Path) -> None:
    tasks = _ctr(address, "tasks", "ls", "-q", check=False).stdout.decode().split()
    for task in tasks:
        _ctr(address, "tasks", "kill", "-s", "SIGKILL", task, check=False)
    for task in tasks:
        for _ in range(50):
            if _ctr(address, "tasks", "rm", task, check=False).returncode == 0:
                break
            time.sleep(0.1)
    for container in _ctr(address, "containers", "ls", "-q", check=False).stdout.decode().split():
        _ctr(address, "containers", "rm", container, check=False)


def _wait_for_no_shims(pattern: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while pids_of(pattern) and time.monotonic() < deadline:
        time.sleep(0.2)


def _memory(daemon_pid: int, shim_patterns: tuple[str, ...]) -> tuple[float, float]:
    """The daemon's PSS, and the shims' per container (helpers such as our zygote included)."""
    shims = {pid for pattern in shim_patterns for pid in pids_of(pattern)}
    shim_kib = sum(pss_kib(p) for p in shims)
    return pss_kib(daemon_pid) / 1024, shim_kib / 1024 / MANY


def _measure(address: Path, daemon_pid: int, shim_patterns: tuple[str, ...]) -> dict[str, float]:
    """Throughput and memory of one daemon whose image is imported."""
    result = {"serial": MANY / _start_many(address, "s", 1)}
    result["daemon_mib"], result["shim_mib"] = _memory(daemon_pid, shim_patterns)
    _remove_all(address)
    result["parallel"] = MANY / _start_many(address, "p", PARALLEL)
    _remove_all(address)
    _wait_for_no_shims(shim_patterns[0])  # idle pool shims linger a while
    _start_many(address, "g", PARALLEL, ("--annotation", GROUP))
    _, result["grouped_shim_mib"] = _memory(daemon_pid, shim_patterns)
    _remove_all(address)
    return result


def _our_shims(daemon: DaemonProcess) -> tuple[str, ...]:
    """Only this daemon's shims (and the zygote they are forked from), not a test's."""
    return (
        f"pycontainerd.shim_v2.main -namespace bench .*-address {daemon.address}( |$)",
        f"pycontainerd.shim_v2.zygote {daemon.state}/",
    )


def _shim_each_memory(daemon: DaemonProcess) -> float:
    """Shim PSS per container of a daemon with a shim per container (pool size 1)."""
    _start_many(daemon.address, "e", PARALLEL)
    _, shim_mib = _memory(daemon.proc.pid, _our_shims(daemon))
    _remove_all(daemon.address)
    return shim_mib


def _runc_floor(work: Path) -> dict[str, float]:
    """`runc run` of a prepared bundle: no daemon, no shim, no image."""
    bundle = work / "bundle"
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy2(busybox_binary(), bundle / "rootfs" / "bin" / "busybox")
    (bundle / "rootfs" / "bin" / "true").symlink_to("busybox")
    subprocess.run(["runc", "spec", "-b", str(bundle)], check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["/bin/true"]
    spec["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(spec))
    root = work / "runc-root"
    samples = []
    for _ in range(LATENCY_RUNS):
        cid = f"floor-{uuid.uuid4().hex[:8]}"
        samples.append(
            timed(
                lambda cid=cid: subprocess.run(
                    ["runc", "--root", str(root), "run", "-b", str(bundle), cid],
                    check=True,
                    capture_output=True,
                )
            )
        )
    return {
        "median": statistics.median(samples) * 1000,
        "p90": statistics.quantiles(samples, n=10)[-1] * 1000,
    }


def run() -> None:
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        archive = work / "busybox.tar"
        write_oci_archive(archive, busybox_image("oci", "gzip"), IMAGE)
        daemon = stack.enter_context(pycontainerd_daemon())
        one_each = stack.enter_context(pycontainerd_daemon(shim_pool_size=1))
        theirs_address = stack.enter_context(containerd_daemon())
        addresses = {"ours": daemon.address, "each": one_each.address}
        if theirs_address is not None:
            addresses["theirs"] = theirs_address
        for address in addresses.values():
            _ctr(address, "images", "import", str(archive))
        latencies = {name: _summary(lat) for name, lat in _paired_latencies(addresses).items()}
        ours = latencies["ours"] | _measure(daemon.address, daemon.proc.pid, _our_shims(daemon))
        each = latencies["each"] | {"shim_mib": _shim_each_memory(one_each)}
        theirs = None
        if theirs_address is not None:
            pid = containerd_pid(theirs_address)
            go_shims = (
                f"containerd-shim-runc-v2 -namespace bench .*-address {theirs_address}( |$)",
            )
            theirs = latencies["theirs"] | _measure(theirs_address, pid, go_shims)
        floor = _runc_floor(work)

    def ref(key: str) -> float | None:
        return theirs[key] if theirs else None

    print_table(
        "ctr run: latency, throughput, memory (reference: containerd 1.6 + Go shim)",
        [
            Row(
                f"ctr run --rm true, median of {LATENCY_RUNS}",
                ours["median"],
                ref("median"),
                "ms",
                "containerd",
            ),
            Row(
                f"ctr run --rm true, p90 of {LATENCY_RUNS}",
                ours["p90"],
                ref("p90"),
                "ms",
                "containerd",
            ),
            Row(
                "ctr run --rm true, median, a shim per container",
                each["median"],
                ref("median"),
                "ms",
                "containerd",
            ),
            Row(
                "runc run of a prepared bundle, median (floor)",
                floor["median"],
                None,
                "ms",
                "no daemon",
            ),
            Row(
                f"{MANY} containers back to back",
                ours["serial"],
                ref("serial"),
                "c/s",
                "containerd",
            ),
            Row(
                f"{MANY} containers, {PARALLEL} at a time",
                ours["parallel"],
                ref("parallel"),
                "c/s",
                "containerd",
            ),
            Row(
                "daemon PSS with 50 running",
                ours["daemon_mib"],
                ref("daemon_mib"),
                "MiB",
                "containerd",
            ),
            Row(
                f"shim PSS per running container (pools of {DEFAULT_POOL_SIZE})",
                ours["shim_mib"],
                ref("shim_mib"),
                "MiB",
                "Go shim",
            ),
            Row(
                "shim PSS per running container, a shim each",
                each["shim_mib"],
                ref("shim_mib"),
                "MiB",
                "Go shim",
            ),
            Row(
                "shim PSS per container, one group",
                ours["grouped_shim_mib"],
                ref("grouped_shim_mib"),
                "MiB",
                "Go shim",
            ),
        ],
    )

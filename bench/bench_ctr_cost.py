"""Daemon CPU per ``ctr`` command, one command at a time: pycontainerd beside containerd 1.6 and 2.x.

Each ``ctr`` run is a new connection and a few to thirty-odd calls (``run -d``:
image and content lookups, a snapshot, the container, the task), so this is
what a command costs the daemon, without the contention of the parallel
phases of ``bench_after_use``. The same Debian ``ctr`` drives all three
daemons (roots on a tmpfs), one daemon after the other.

Run alone with ``python -m bench ctr_cost``; BENCH_CTR_COMMANDS sets the
commands per kind (30).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.common import (
    Row,
    containerd_daemon,
    cpu_seconds,
    pids_of,
    print_table,
    pycontainerd_daemon,
    tmpfs_dir,
)
from tests.support.images import busybox_image, push_image
from tests.support.registry import TestRegistry

COMMANDS = int(os.environ.get("BENCH_CTR_COMMANDS", "30"))
NAMESPACE = "bench"
DAEMONS = ("pycontainerd", "containerd 1.6", "containerd 2.x")


@contextlib.contextmanager
def _daemon(name: str, base: Path) -> Iterator[tuple[Path, int] | None]:
    if name == "pycontainerd":
        with pycontainerd_daemon(base=base) as daemon:
            assert daemon.proc is not None
            yield daemon.address, daemon.proc.pid
        return
    with containerd_daemon(1 if name == "containerd 1.6" else 2, base=base) as address:
        if address is None:
            yield None
            return
        yield address, pids_of(f"containerd.* -c {address.parent}/config.toml")[0]


def _kinds(ref: str) -> list[tuple[str, Callable[[int], list[str]]]]:
    """(what, the ctr arguments of its i-th command), in the order they run."""
    return [
        ("containers create", lambda i: ["containers", "create", ref, f"c-{i}"]),
        ("containers rm", lambda i: ["containers", "rm", f"c-{i}"]),
        ("run -d", lambda i: ["run", "-d", ref, f"r-{i}", "sleep", "600"]),
        ("tasks kill -s KILL", lambda i: ["tasks", "kill", "-s", "SIGKILL", f"r-{i}"]),
        ("images ls", lambda i: ["images", "ls"]),
        ("version", lambda i: ["version"]),
    ]


def _measure(address: Path, pid: int, ref: str) -> dict[str, float]:
    def ctr(*args: str, check: bool = True) -> int:
        return subprocess.run(
            ["ctr", "-a", str(address), "-n", NAMESPACE, *args], check=check, capture_output=True
        ).returncode

    ctr("images", "pull", "--plain-http", ref)
    figures: dict[str, float] = {}
    for what, args in _kinds(ref):
        before = cpu_seconds(pid)
        for i in range(COMMANDS):
            ctr(*args(i))
        figures[what] = (cpu_seconds(pid) - before) * 1000 / COMMANDS
    for i in range(COMMANDS):  # untimed: the killed tasks go, then their containers
        while ctr("tasks", "rm", f"r-{i}", check=False) != 0 and _task_left(ctr, f"r-{i}"):
            time.sleep(0.05)
        ctr("containers", "rm", f"r-{i}", check=False)
    return figures


def _task_left(ctr: Callable[..., int], task: str) -> bool:
    return ctr("tasks", "ps", task, check=False) == 0


def run() -> None:
    with tmpfs_dir("2g") as roots, TestRegistry() as registry:
        ref = push_image(registry, busybox_image("oci", "gzip"), "bench/busybox").ref
        results: dict[str, dict[str, float]] = {}
        for name in DAEMONS:
            with _daemon(name, roots) as started:
                if started is not None:
                    results[name] = _measure(*started, ref)
    ours = results["pycontainerd"]
    for reference in DAEMONS[1:]:
        if reference not in results:
            continue
        rows = [
            Row(
                f"{what}: daemon CPU per command",
                ours[what],
                results[reference][what],
                "ms",
                reference,
            )
            for what in ours
        ]
        print_table(
            f"ctr commands one at a time, {COMMANDS} each (ratio: ours / {reference})", rows
        )


if __name__ == "__main__":
    run()

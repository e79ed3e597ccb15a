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

import os
import time
from collections.abc import Callable

from bench.bench_after_use import DAEMONS, Contender
from bench.common import Row, cpu_seconds, print_table, tmpfs_dir
from tests.support.images import busybox_image, push_image
from tests.support.registry import TestRegistry

COMMANDS = int(os.environ.get("BENCH_CTR_COMMANDS", "30"))


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


def _measure(daemon: Contender, ref: str) -> dict[str, float]:
    daemon.ctr("images", "pull", "--plain-http", ref)
    figures: dict[str, float] = {}
    for what, args in _kinds(ref):
        before = cpu_seconds(daemon.pid)
        for i in range(COMMANDS):
            daemon.ctr(*args(i))
        figures[what] = (cpu_seconds(daemon.pid) - before) * 1000 / COMMANDS
    for i in range(COMMANDS):  # untimed: the killed tasks go, then their containers
        task = f"r-{i}"
        while daemon.ctr("tasks", "rm", task, check=False).returncode != 0:
            if daemon.ctr("tasks", "ps", task, check=False).returncode != 0:
                break  # no task left
            time.sleep(0.05)
        daemon.ctr("containers", "rm", task, check=False)
    return figures


def run() -> None:
    with tmpfs_dir("2g") as roots, TestRegistry() as registry:
        ref = push_image(registry, busybox_image("oci", "gzip"), "bench/busybox").ref
        results: dict[str, dict[str, float]] = {}
        for name, start in DAEMONS.items():
            with start(roots) as daemon:
                if daemon is not None:
                    results[name] = _measure(daemon, ref)
    ours, *references = DAEMONS
    for reference in references:
        if reference not in results:
            continue
        rows = [
            Row(f"{what}: daemon CPU per command", mine, results[reference][what], "ms", reference)
            for what, mine in results[ours].items()
        ]
        print_table(
            f"ctr commands one at a time, {COMMANDS} each (ratio: ours / {reference})", rows
        )


if __name__ == "__main__":
    run()

"""Stress the shim pool the way bench_after_use does: parallel ``ctr run -d``, removal, ``run --rm``.

Not a benchmark (``python -m bench`` skips it): a reproducer. Each round starts a
fresh daemon with its defaults (pool size 8, idle 10 s), pulls busybox, starts
`RUNNING` sleep containers `PARALLEL` at a time, kills and removes them, then
runs ``ctr run --rm`` `RM_RUNS` times. Every failed ``ctr`` is printed with its
stderr; a round with failures keeps its daemon log in ``STRESS_KEEP`` (a temp
dir by default). With ``STRESS_NO_ZYGOTE=1`` the shim zygote is retired before
the parallel starts, as after its idle time or an upgrade of the code: the first
new shim then cannot start through it and the daemon falls back to the shim's
``start`` command. Exit status: the number of failed rounds (at most 100).

    python -m bench.stress_pool [ROUNDS]

Run it from the checkout whose code is to be tested, with that checkout on
PYTHONPATH (the zygote starts in ``/``, so it would import an installed copy).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import pycontainerd_daemon
from pycontainerd.shim_v2.zygote import retire_zygote
from tests.support.daemon import DaemonProcess
from tests.support.images import busybox_image, push_image
from tests.support.registry import TestRegistry

NAMESPACE = "bench"
RUNNING = int(os.environ.get("STRESS_RUNNING", "50"))
PARALLEL = 8
RM_RUNS = int(os.environ.get("STRESS_RM_RUNS", "20"))
SHIM_SOCKET_DIR = "s"
#: What the daemon logs (pycontainerd.runtime.own_shim) when the zygote started no shim.
FALLBACK_LOG = "running the start command"


def _ctr(address: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["ctr", "-a", str(address), "-n", NAMESPACE, *args], capture_output=True, timeout=120
    )


def _in_parallel(work: Callable[[str], object], items: Iterable[str]) -> None:
    with ThreadPoolExecutor(PARALLEL) as workers:
        list(workers.map(work, items))


def _round(daemon: DaemonProcess, image: str, failures: list[str]) -> None:
    address = daemon.address

    def check(what: str, done: subprocess.CompletedProcess[bytes]) -> None:
        if done.returncode != 0:
            failures.append(f"{what}: {done.stderr.decode(errors='replace').strip()}")

    check("pull", _ctr(address, "images", "pull", "--plain-http", image))
    if os.environ.get("STRESS_NO_ZYGOTE"):
        retire_zygote(str(daemon.state / SHIM_SOCKET_DIR))
    _in_parallel(
        lambda cid: check(f"run -d {cid}", _ctr(address, "run", "-d", image, cid, "sleep", "3600")),
        (f"sleep-{i}" for i in range(RUNNING)),
    )

    tasks = _ctr(address, "tasks", "ls", "-q").stdout.decode().split()
    for task in tasks:
        _ctr(address, "tasks", "kill", "-s", "SIGKILL", task)

    def remove(task: str) -> None:
        for _ in range(100):
            if _ctr(address, "tasks", "rm", task).returncode == 0:
                return
            time.sleep(0.05)

    _in_parallel(remove, tasks)
    containers = _ctr(address, "containers", "ls", "-q").stdout.decode().split()
    _in_parallel(lambda cid: _ctr(address, "containers", "rm", cid), containers)
    for i in range(RM_RUNS):
        check(f"run --rm rm-{i}", _ctr(address, "run", "--rm", image, f"rm-{i}", "true"))


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 8
    keep = Path(os.environ.get("STRESS_KEEP") or tempfile.mkdtemp(prefix="stress-pool-"))
    keep.mkdir(parents=True, exist_ok=True)
    failed_rounds = 0
    with TestRegistry() as registry:
        image = push_image(registry, busybox_image("oci", "gzip"), "stress/busybox").ref
        for number in range(rounds):
            failures: list[str] = []
            with pycontainerd_daemon() as daemon:
                started = time.monotonic()
                _round(daemon, image, failures)
                took = time.monotonic() - started
                fallbacks = daemon.log().count(FALLBACK_LOG)
                if failures:
                    failed_rounds += 1
                    shutil.copy(daemon.log_path, keep / f"daemon-{number}.log")
            outcome = "ok" if not failures else f"{len(failures)} failed"
            print(f"round {number}: {outcome} ({took:.0f}s, {fallbacks} start commands run)")
            for failure in failures:
                print(f"  {failure}", flush=True)
    print(f"{failed_rounds} of {rounds} rounds failed; logs in {keep}")
    return min(failed_rounds, 100)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

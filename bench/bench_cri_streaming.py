"""CRI streaming beside containerd 2.x's CRI, each in a namespace of its own with the same
images: ``crictl exec -s`` (ExecSync) and streaming ``crictl exec`` round trips (median of
20 ``true``), and port-forward throughput (100 MiB from a pod, read through crictl)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from bench.common import Row, median_of, print_table, timed
from tests.support.critest import GO_BIN, CritestRun, push_critest_images
from tests.support.registry import TestRegistry

IMAGE = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
ROUNDS = 20
MEBIBYTES = 100
PORT = 18090

READ_ALL = """
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
started, total = time.perf_counter(), 0
while chunk := s.recv(1 << 20):
    total += len(chunk)
print(total, time.perf_counter() - started)
"""


def _measure(run: CritestRun, address: Path) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="pbst-", dir=run.base))
    crictl = [str(GO_BIN / "crictl"), f"--runtime-endpoint=unix://{address}"]
    crictl += [f"--image-endpoint=unix://{address}", "--timeout=60s"]

    def ok(*args: str) -> str:
        return subprocess.run(
            run.argv([*crictl, *args]), check=True, capture_output=True, text=True
        ).stdout.strip()

    ok("pull", IMAGE)
    pod = work / "pod.json"
    pod.write_text(
        json.dumps({"metadata": {"name": "bench", "namespace": "b", "uid": uuid.uuid4().hex}})
    )
    pod_id = ok("runp", str(pod))
    size = MEBIBYTES * 1024 * 1024
    serve = f"head -c {size} /dev/zero"
    ids = []
    for name, cmd in (
        ("sleeper", ["sleep", "100000"]),
        ("server", ["nc", "-ll", "-p", "8080", "-e", "sh", "-c", serve]),
    ):
        config = work / f"{name}.json"
        config.write_text(
            json.dumps({"metadata": {"name": name}, "image": {"image": IMAGE}, "command": cmd})
        )
        ids.append(ok("create", pod_id, str(config), str(pod)))
        ok("start", ids[-1])
    sleeper = ids[0]
    results = {
        "exec -s true (ExecSync)": median_of(
            [timed(lambda: ok("exec", "-s", sleeper, "true")) for _ in range(ROUNDS)]
        ),
        "exec true (streaming, SPDY)": median_of(
            [timed(lambda: ok("exec", sleeper, "true")) for _ in range(ROUNDS)]
        ),
    }
    forward = subprocess.Popen(
        run.argv([*crictl, "port-forward", pod_id, f"{PORT}:8080"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert forward.stdout is not None
        forward.stdout.readline()
        got = subprocess.run(
            run.argv([sys.executable, "-c", READ_ALL, str(PORT)]),
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        assert int(got[0]) == size, got
        results["port-forward MiB/s"] = MEBIBYTES / float(got[1])
    finally:
        forward.terminate()
        forward.wait(30)
    ok("rmp", "-f", pod_id)
    return results


@contextlib.contextmanager
def _pycontainerd(run: CritestRun) -> Iterator[Path]:
    with run.pycontainerd() as daemon:
        yield daemon.address


@contextlib.contextmanager
def _containerd2(run: CritestRun) -> Iterator[Path]:
    with run.containerd2() as (address, _):
        yield address


def run() -> None:
    with TestRegistry() as registry:
        push_critest_images(registry)
        measured: dict[str, dict[str, float]] = {}
        starters: dict[str, Callable[[CritestRun], AbstractContextManager[Path]]] = {
            "pycontainerd": _pycontainerd,
            "containerd 2": _containerd2,
        }
        for name, start in starters.items():
            with CritestRun(registry) as critest_run, start(critest_run) as address:
                measured[name] = _measure(critest_run, address)
            time.sleep(1)
    ours, ref = measured["pycontainerd"], measured["containerd 2"]
    rows = [
        Row(
            what,
            ours[what] * (1000 if "MiB" not in what else 1),
            ref[what] * (1000 if "MiB" not in what else 1),
            "MiB/s" if "MiB" in what else "ms",
            "containerd 2.4 CRI",
        )
        for what in ours
    ]
    print_table("CRI streaming: crictl round trips and port-forward", rows)


if __name__ == "__main__":
    run()

"""CRI with crictl: pod start latency (RunPodSandbox + CreateContainer + StartContainer of
one container, median and p90 of 20), 30 pods started 5 at a time, and the daemon's memory
with those 30 pods, pycontainerd beside containerd 2.x in the same namespaces."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import Row, print_table, pss_kib, timed
from tests.support.cri import Crictl
from tests.support.critest import CritestRun, push_critest_images
from tests.support.registry import TestRegistry

IMAGE = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
LATENCY_SAMPLES = 20
PODS = 30
PARALLEL = 5


def _pod(crictl: Crictl, base: Path) -> str:
    name = "bench-" + uuid.uuid4().hex[:8]
    pod = base / f"{name}-pod.json"
    pod.write_text(
        json.dumps({"metadata": {"name": name, "namespace": "bench", "uid": name}, "linux": {}})
    )
    ctr = base / f"{name}-ctr.json"
    ctr.write_text(
        json.dumps(
            {"metadata": {"name": "c"}, "image": {"image": IMAGE}, "command": ["sleep", "3600"]}
        )
    )
    pod_id = crictl.ok("runp", str(pod)).strip()
    container = crictl.ok("create", pod_id, str(ctr), str(pod)).strip()
    crictl.ok("start", container)
    return pod_id


def _measure(crictl: Crictl, base: Path, pid: int) -> dict[str, float]:
    crictl.ok("pull", IMAGE)
    crictl.ok("rmp", "-f", _pod(crictl, base))  # warm-up: the pause image is pulled
    samples = []
    for _ in range(LATENCY_SAMPLES):
        started = time.perf_counter()
        pod = _pod(crictl, base)
        samples.append(time.perf_counter() - started)
        crictl.ok("rmp", "-f", pod)
    with ThreadPoolExecutor(PARALLEL) as pool:
        elapsed = timed(lambda: list(pool.map(lambda _: _pod(crictl, base), range(PODS))))
    memory = pss_kib(pid) / 1024
    crictl.ok("rmp", "-fa", timeout=300)
    return {
        "median": statistics.median(samples) * 1000,
        "p90": statistics.quantiles(samples, n=10)[-1] * 1000,
        "throughput": PODS / elapsed,
        "memory": memory,
    }


def run() -> None:
    results: dict[str, dict[str, float]] = {}
    with TestRegistry() as registry:
        push_critest_images(registry)
        for name in ("pycontainerd", "containerd2"):
            with CritestRun(registry) as setup:
                if name == "pycontainerd":
                    with setup.pycontainerd() as ours:
                        assert ours.proc is not None
                        crictl = Crictl(ours.address, setup.base / "crictl.yaml")
                        results[name] = _measure(crictl, setup.base, ours.proc.pid)
                else:
                    with setup.containerd2() as (address, pid):
                        crictl = Crictl(address, setup.base / "crictl.yaml")
                        results[name] = _measure(crictl, setup.base, pid)
    ours, ref = results["pycontainerd"], results["containerd2"]
    print_table(
        "CRI (crictl): pods of one busybox container",
        [
            Row("pod start latency, median", ours["median"], ref["median"], "ms", "containerd 2"),
            Row("pod start latency, p90", ours["p90"], ref["p90"], "ms", "containerd 2"),
            Row(
                f"{PODS} pods, {PARALLEL} at a time",
                ours["throughput"],
                ref["throughput"],
                "pods/s",
                "containerd 2",
            ),
            Row(
                f"daemon PSS with {PODS} pods", ours["memory"], ref["memory"], "MiB", "containerd 2"
            ),
        ],
    )

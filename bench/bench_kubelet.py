"""kubelet (standalone, static pods) on pycontainerd beside containerd 2.x's CRI: the time from
writing a pod's manifest to all its containers RUNNING, and from removing it to the pod gone.

One kubelet per daemon, each daemon and its kubelet in a namespace of their own with the same
CNI config and images (tests/support/critest.py). The pod is the kubelet test's: two containers
on one network sharing an emptyDir, with probes. Its image is pre-pulled and an untimed
warm-up pod runs first, so no pull is timed. Rounds alternate between the daemons.

A removed pod is stopped within its grace period (2 s); its sandbox then stays until kubelet's
container GC, which runs once a minute (``ContainerGCPeriod``), removes it: "gone" measures
mostly where that tick falls, and a round waits for it before the next.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from bench.common import Row, print_table
from tests.support.cri import Crictl
from tests.support.cri_client import CRIClient, cri
from tests.support.critest import CritestRun, push_critest_images
from tests.support.kubelet import NODE, Kubelet, web_pod
from tests.support.registry import TestRegistry

IMAGE = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
ROUNDS = 5
CONTAINERS = 2
TIMEOUT = 180.0
POLL = 0.05
POD_NAME_LABEL = "io.kubernetes.pod.name"
STARTED = "manifest to containers running"
STOPPED = "manifest removed to pod stopped"
GONE = "manifest removed to pod gone (kubelet's GC)"


@dataclass
class Node:
    """One daemon, its kubelet and a CRI client polling it."""

    name: str
    kubelet: Kubelet
    client: CRIClient
    samples: dict[str, list[float]] = field(default_factory=dict)
    removed_at: float = 0.0

    def _running(self, pod: str) -> int:
        found = self.client.runtime.ListContainers(
            cri.ListContainersRequest(
                filter=cri.ContainerFilter(
                    state=cri.ContainerStateValue(state=cri.CONTAINER_RUNNING),
                    label_selector={POD_NAME_LABEL: pod},
                )
            ),
            timeout=30,
        )
        return len(found.containers)

    def _sandboxes(self, pod: str, ready: bool = False) -> int:
        state = cri.PodSandboxStateValue(state=cri.SANDBOX_READY) if ready else None
        found = self.client.runtime.ListPodSandbox(
            cri.ListPodSandboxRequest(
                filter=cri.PodSandboxFilter(state=state, label_selector={POD_NAME_LABEL: pod})
            ),
            timeout=30,
        )
        return len(found.items)

    def _wait(self, predicate: Callable[[], bool], what: str) -> float:
        """Seconds until ``predicate()``; fails with kubelet's log after TIMEOUT."""
        started = time.perf_counter()
        while not predicate():
            if time.perf_counter() - started > TIMEOUT:
                raise RuntimeError(
                    f"{self.name}: timed out after {TIMEOUT}s waiting for {what}; "
                    f"kubelet's log ends:\n{self.kubelet.log()[-4000:]}"
                )
            time.sleep(POLL)
        return time.perf_counter() - started

    def start_and_remove(self, name: str) -> None:
        """Write the manifest, wait for its containers, remove it, wait for the pod to stop.

        The stopped sandbox stays until kubelet's container GC (once a minute) removes it:
        :meth:`wait_gone` waits for that.
        """
        pod = f"{name}-{NODE}"
        path = self.kubelet.manifests / f"{name}.json"
        text = json.dumps(web_pod(name, IMAGE))
        started = time.perf_counter()
        path.write_text(text)
        up = (
            time.perf_counter()
            - started
            + self._wait(lambda: self._running(pod) == CONTAINERS, f"{pod} running")
        )
        self.samples.setdefault(STARTED, []).append(up)
        self.removed_at = time.perf_counter()
        path.unlink()
        self._wait(
            lambda: self._running(pod) == 0 and self._sandboxes(pod, ready=True) == 0,
            f"{pod} stopped",
        )
        self.samples.setdefault(STOPPED, []).append(time.perf_counter() - self.removed_at)

    def wait_gone(self, name: str) -> None:
        pod = f"{name}-{NODE}"
        self._wait(lambda: self._sandboxes(pod) == 0, f"{pod} removed")
        self.samples.setdefault(GONE, []).append(time.perf_counter() - self.removed_at)


@contextmanager
def _node(name: str, registry: TestRegistry) -> Iterator[Node]:
    with ExitStack() as stack:
        run = stack.enter_context(CritestRun(registry))
        if name == "pycontainerd":
            address = stack.enter_context(run.pycontainerd()).address
        else:
            address, _ = stack.enter_context(run.containerd2())
        Crictl(address, run.base / "crictl.yaml").ok("pull", IMAGE, timeout=300)
        kubelet = stack.enter_context(Kubelet(address, run.netns, run.base))
        client = stack.enter_context(CRIClient(address))
        node = Node(name, kubelet, client)
        node.start_and_remove("warmup")
        yield node


def run() -> None:
    with TestRegistry() as registry:
        push_critest_images(registry)
        with ExitStack() as stack:
            nodes = [
                stack.enter_context(_node(n, registry)) for n in ("pycontainerd", "containerd2")
            ]
            for node in nodes:
                node.wait_gone("warmup")
                node.samples.clear()
            for i in range(ROUNDS):
                # One daemon after the other; the pods' sandboxes then go together (kubelet's
                # GC runs once a minute) before the next round.
                for node in nodes:
                    node.start_and_remove(f"bench-{i}")
                for node in nodes:
                    node.wait_gone(f"bench-{i}")
    for node in nodes:
        for what, samples in node.samples.items():
            print(
                f"kubelet on {node.name}, {what}: " + ", ".join(f"{s:.2f}" for s in samples) + " s"
            )
    ours, ref = (node.samples for node in nodes)
    rows = []
    for what in (STARTED, STOPPED, GONE):
        for label, fn in (("median", statistics.median), ("max", max)):
            rows.append(
                Row(
                    f"{what.split(' (')[0]}, {label}",
                    fn(ours[what]),
                    fn(ref[what]),
                    "s",
                    "containerd 2",
                )
            )
    print_table(
        f"kubelet static pods: {CONTAINERS} containers, image pre-pulled (no pull timed), "
        f"{ROUNDS} rounds each, alternating",
        rows,
    )


if __name__ == "__main__":
    run()

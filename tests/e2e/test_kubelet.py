"""The real kubelet (standalone, static pods) running a pod on pycontainerd.

kubelet and the daemon share a network namespace of the test's own
(tests/support/cri.py, tests/support/kubelet.py); the pod: two containers on
the pod's network sharing an emptyDir, one with an HTTP readiness probe, one
with an exec liveness probe.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.support.cri import CRIEnv, cri_env
from tests.support.kubelet import NODE, Kubelet, web_pod
from tests.support.procs import all_pids, command_line
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

POD = "web"
NODE_POD = f"{POD}-{NODE}"  # static pods are named after the node


@pytest.fixture(scope="module")
def env(registry, busybox_pushed):
    with cri_env(registry) as running:
        running.crictl.ok("pull", busybox_pushed.ref)
        yield running


@pytest.fixture(scope="module")
def kubelet(env):
    assert env.daemon is not None
    with Kubelet(env.daemon.address, env.netns, env.base) as running:
        yield running


def containers(env: CRIEnv) -> dict[str, dict]:
    """The pod's containers by name: the newest attempt of each."""
    out: dict[str, dict] = {}
    for c in env.crictl.json("ps", "-a")["containers"]:
        name = c["metadata"]["name"]
        if name not in out or c["metadata"]["attempt"] > out[name]["metadata"]["attempt"]:
            out[name] = c
    return out


def running(env: CRIEnv) -> bool:
    found = containers(env)
    return set(found) == {"server", "sidecar"} and all(
        c["state"] == "CONTAINER_RUNNING" for c in found.values()
    )


def attempt(env: CRIEnv, name: str) -> int:
    found = containers(env).get(name)
    return found["metadata"]["attempt"] if found and found["state"] == "CONTAINER_RUNNING" else -1


def test_kubelet_runs_restarts_and_removes_a_static_pod(env, kubelet, busybox_pushed):
    path = kubelet.manifests / "web.json"
    path.write_text(json.dumps(web_pod(POD, busybox_pushed.ref)))
    try:
        wait_for(lambda: running(env), timeout=120)
        pods = env.crictl.json("pods")["items"]
        assert [p["metadata"]["name"] for p in pods] == [NODE_POD]
        assert pods[0]["state"] == "SANDBOX_READY"

        def ready() -> bool:
            for pod in kubelet.pods():
                statuses = pod.get("status", {}).get("containerStatuses") or []
                if pod["metadata"]["name"] == NODE_POD and len(statuses) == 2:
                    return all(s.get("ready") for s in statuses)
            return False

        wait_for(ready, timeout=60)
        # One network and one emptyDir: the sidecar fetched the server's page into it.
        server = containers(env)["server"]["id"]
        seen: list[object] = []

        def fetched() -> bool:
            seen.append(env.crictl.run("exec", "-s", server, "cat", "/data/seen"))
            return b"hello" in seen[-1].stdout  # type: ignore[attr-defined]

        wait_for(
            fetched,
            what=f"the sidecar's fetch in the shared volume: {seen[-1:]}",
            timeout=30,
        )

        # A killed process: kubelet starts the container again.
        before = attempt(env, "server")
        pid = env.crictl.json("inspect", server)["info"]["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: attempt(env, "server") > before, timeout=60)

        # A failing liveness probe: kubelet restarts that container.
        before = attempt(env, "sidecar")
        sidecar = containers(env)["sidecar"]["id"]
        env.crictl.ok("exec", "-s", sidecar, "rm", "/tmp/alive")
        wait_for(lambda: attempt(env, "sidecar") > before, timeout=60)
        assert attempt(env, "server") >= 1

        # Our stats reach kubelet's summary.
        summary = json.loads(
            kubelet.get("http://127.0.0.1:10255/stats/summary?only_cpu_and_memory=true")
        )
        stats = [p for p in summary.get("pods", []) if p["podRef"]["name"] == NODE_POD]
        assert stats and stats[0]["memory"]["workingSetBytes"] > 0, summary.get("pods")
        assert stats[0]["cpu"]["usageCoreNanoSeconds"] > 0, stats

        # kill -9 of the daemon: the pod runs on, kubelet reconnects and keeps it.
        before = {n: (c["id"], c["metadata"]["attempt"]) for n, c in containers(env).items()}
        env.restart_after_kill9()
        wait_for(lambda: running(env), timeout=60)
        assert env.crictl.json("pods")["items"][0]["id"] == pods[0]["id"]
        wait_for(ready, timeout=60)
        after = {n: (c["id"], c["metadata"]["attempt"]) for n, c in containers(env).items()}
        assert after == before
    finally:
        path.unlink()
    wait_for(lambda: env.crictl.json("pods")["items"] == [], timeout=120)
    assert env.crictl.json("ps", "-a")["containers"] == []
    # Nothing of the pod is left: no mount, shim, network namespace or log.
    pod_id = pods[0]["id"]
    assert pod_id not in Path("/proc/self/mountinfo").read_text()
    assert not [p for p in all_pids() if pod_id in " ".join(command_line(p))]
    assert not list(Path("/run/netns").glob(f"*{pod_id}*"))
    assert not list((kubelet.base / "pod-logs").glob("*")), list(
        (kubelet.base / "pod-logs").glob("*")
    )


def test_kubelet_runs_pods_one_after_another(env, kubelet, busybox_pushed):
    """Pods created and removed in turn, one name used again while its stopped sandbox stays."""
    label = "io.kubernetes.pod.name"

    def running_in(pod: str) -> int:
        found = env.crictl.json("ps", "--label", f"{label}={pod}", "--state", "running")
        return len(found["containers"])

    def ready_sandboxes(pod: str) -> int:
        return len(
            env.crictl.json("pods", "--label", f"{label}={pod}", "--state", "ready")["items"]
        )

    names = ["seq-a", "seq-b", "seq-a", "seq-c", "seq-d"]
    for round_, name in enumerate(names):
        pod = f"{name}-{NODE}"
        path = kubelet.manifests / f"{name}.json"
        path.write_text(json.dumps(web_pod(name, busybox_pushed.ref)))
        try:
            wait_for(lambda p=pod: running_in(p) == 2, f"pod {round_} ({pod}) running", timeout=90)
        finally:
            path.unlink()
        wait_for(
            lambda p=pod: running_in(p) == 0 and ready_sandboxes(p) == 0,
            f"pod {round_} ({pod}) stopped",
            timeout=60,
        )
    wait_for(lambda: env.crictl.json("pods")["items"] == [], "every sandbox removed", timeout=150)
    assert env.crictl.json("ps", "-a")["containers"] == []

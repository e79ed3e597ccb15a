"""CRI container events, and kill -9 of the daemon with pods running: after the restart
pods, containers, their states, IPs and logs are all there, and keep working."""

from __future__ import annotations

import os
import threading
import time

import grpc
import pytest

from tests.support.cri import CRIEnv, cri_env
from tests.support.cri_client import CRIClient, cri
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(registry, busybox_pushed):
    with cri_env(registry) as running:
        running.crictl.ok("pull", busybox_pushed.ref)
        yield running


def start(env: CRIEnv, pod: str, pod_config: str, name: str, image: str, cmd: list[str]) -> str:
    config = str(env.container_config(name, image, cmd))
    container = env.crictl.ok("create", pod, config, pod_config).strip()
    env.crictl.ok("start", container)
    return container


def state(env: CRIEnv, container: str) -> dict:
    return env.crictl.json("inspect", container)["status"]


def test_container_events_for_create_start_stop_delete(env, busybox_pushed):
    events: list[tuple[str, int]] = []
    with CRIClient(env.daemon.address) as client:
        stream = client.runtime.GetContainerEvents(cri.GetEventsRequest())

        def collect() -> None:
            try:
                for event in stream:
                    events.append((event.container_id, event.container_event_type))
            except grpc.RpcError:
                pass

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        time.sleep(0.5)  # the subscription is in place before the first event
        pod_config = str(env.pod_config("events"))
        pod = env.crictl.ok("runp", pod_config).strip()
        container = start(env, pod, pod_config, "e", busybox_pushed.ref, ["sleep", "100"])
        env.crictl.ok("stop", "--timeout", "1", container)
        env.crictl.ok("rm", container)
        wanted = [
            cri.CONTAINER_CREATED_EVENT,
            cri.CONTAINER_STARTED_EVENT,
            cri.CONTAINER_STOPPED_EVENT,
            cri.CONTAINER_DELETED_EVENT,
        ]
        wait_for(lambda: [k for c, k in events if c == container] == wanted, timeout=10)
        stream.cancel()
        env.crictl.ok("rmp", "-f", pod)


def test_kill9_with_pods_running_then_restart_recovers_everything(env, busybox_pushed):
    image = busybox_pushed.ref
    crictl = env.crictl
    pod_config = str(env.pod_config("survivor"))
    pod = crictl.ok("runp", pod_config).strip()
    host_config = str(env.pod_config("hostsurvivor", host_network=True))
    host_pod = crictl.ok("runp", host_config).strip()
    ip = crictl.json("inspectp", pod)["status"]["network"]["ip"]
    ticker = start(
        env,
        pod,
        pod_config,
        "ticker",
        image,
        ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"],
    )
    done = start(env, pod, pod_config, "done", image, ["sh", "-c", "echo finished; exit 3"])
    later = start(env, pod, pod_config, "later", image, ["sh", "-c", "sleep 2; exit 5"])
    sleeper = start(env, host_pod, host_config, "sleeper", image, ["sleep", "1000"])
    wait_for(lambda: state(env, done)["state"] == "CONTAINER_EXITED", timeout=10)
    wait_for(lambda: b"tick 5" in crictl.run("logs", ticker).stdout, timeout=10)
    pid_before = crictl.json("inspect", ticker)["info"]["pid"]

    env.daemon.kill9()
    time.sleep(3)  # "later" exits while the daemon is down
    env.daemon.start()

    pods = {p["id"]: p for p in crictl.json("pods")["items"]}
    assert pods[pod]["state"] == "SANDBOX_READY" and pods[host_pod]["state"] == "SANDBOX_READY"
    assert crictl.json("inspectp", pod)["status"]["network"]["ip"] == ip
    assert state(env, ticker)["state"] == "CONTAINER_RUNNING"
    assert crictl.json("inspect", ticker)["info"]["pid"] == pid_before
    assert state(env, sleeper)["state"] == "CONTAINER_RUNNING"
    assert (state(env, done)["state"], state(env, done)["exitCode"]) == ("CONTAINER_EXITED", 3)
    wait_for(lambda: state(env, later)["state"] == "CONTAINER_EXITED", timeout=10)
    assert state(env, later)["exitCode"] == 5
    assert crictl.ok("logs", done) == "finished\n"
    # The log goes on in the same file, without a gap.
    before = len(crictl.run("logs", ticker).stdout.splitlines())
    wait_for(lambda: len(crictl.run("logs", ticker).stdout.splitlines()) > before + 5, timeout=10)
    numbers = [int(line.split()[1]) for line in crictl.run("logs", ticker).stdout.splitlines()]
    assert numbers == list(range(len(numbers)))
    # And it all still works: exec, stop, removal with its network.
    assert "tick" not in crictl.ok("exec", "-s", ticker, "echo", "alive")
    crictl.ok("stop", "--timeout", "1", ticker)
    assert state(env, ticker)["state"] == "CONTAINER_EXITED"
    netns = crictl.json("inspectp", pod)["info"]["netNamespacePath"]
    crictl.ok("rmp", "-f", pod, host_pod)
    assert crictl.ok("pods", "-q").split() == []
    assert crictl.ok("ps", "-aq").split() == []
    assert not os.path.exists(netns)
    # The pod's address went back to the pool (host-local keeps one file per address).
    assert not [p for p in (env.base / "cni-ipam").rglob("10.*")]

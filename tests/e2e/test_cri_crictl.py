"""CRI end to end with cri-tools' crictl: images, pods (pod and host network), containers,
logs, exec, stats, port mapping, and what ctr sees of it in namespace k8s.io.

The daemon runs inside the test's own network namespace (tests/support/cri.py),
so pod networks never touch the host's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.cri import POD_SUBNET, CRIEnv, cri_env
from tests.support.ctr_env import mounts_below
from tests.support.images import build_image, busybox_entries, push_busybox, push_image
from tests.support.registry import TestRegistry
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

CRI_LOG_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (F|P) (.*)$")


USERS = {"kube": "s3cret"}


@pytest.fixture(scope="module")
def auth_registry():
    with TestRegistry(users=USERS) as running:
        yield running


@pytest.fixture(scope="module")
def env(registry, busybox_pushed, auth_registry):
    with cri_env(registry, more_registries=(auth_registry,)) as running:
        running.crictl.ok("pull", busybox_pushed.ref)
        yield running


@pytest.fixture
def image(busybox_pushed) -> str:
    return busybox_pushed.ref


def run_pod(env: CRIEnv, name: str, **kwargs) -> tuple[str, str]:
    config = str(env.pod_config(name, **kwargs))
    return env.crictl.ok("runp", config).strip(), config


def run_container(
    env: CRIEnv, pod: str, pod_config: str, name: str, image: str, command: list[str], **kw
) -> str:
    config = str(env.container_config(name, image, command, **kw))
    container = env.crictl.ok("create", pod, config, pod_config).strip()
    env.crictl.ok("start", container)
    return container


def test_version_and_info(env):
    version = env.crictl.ok("version")
    assert "RuntimeName:  pycontainerd" in version
    assert "RuntimeApiVersion:  v1" in version
    info = env.crictl.json("info")
    conditions = {c["type"]: c["status"] for c in info["status"]["conditions"]}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}
    assert "cgroupfs" in env.crictl.ok("runtime-config").lower()


def test_images_and_imagefsinfo_agree_with_ctr(env, image):
    listed = env.crictl.json("images")["images"]
    tags = {t for i in listed for t in i["repoTags"]}
    assert image in tags and env.pause_ref in tags
    ctr = subprocess.run(
        ["ctr", "-a", str(env.daemon.address), "-n", "k8s.io", "images", "ls", "-q"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert image in ctr.split()
    status = env.crictl.json("inspecti", image)
    assert status["status"]["repoTags"] == [image]
    assert status["info"]["imageSpec"]["config"]["Cmd"] == ["sh"]
    fs = env.crictl.json("imagefsinfo")["status"]
    assert int(fs["imageFilesystems"][0]["usedBytes"]["value"]) > 0
    assert fs["imageFilesystems"][0]["fsId"]["mountpoint"].endswith("overlayfs")


def _ctr_images(env: CRIEnv) -> dict[str, dict]:
    out = subprocess.run(
        ["ctr", "-a", str(env.daemon.address), "-n", "k8s.io", "images", "ls"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    rows = {}
    for line in out.splitlines()[1:]:
        fields = line.split()
        rows[fields[0]] = {"digest": fields[2], "labels": fields[-1]}
    return rows


def test_pull_inspect_and_rmi(env, registry):
    image = build_image([busybox_entries()], cmd=("echo", "a distinct image"))
    pushed = push_image(registry, image, "cri/pulled", "v1")
    out = env.crictl.ok("pull", pushed.ref)
    assert pushed.config_digest in out
    listed = {i["id"]: i for i in env.crictl.json("images")["images"]}
    entry = listed[pushed.config_digest]
    repo = pushed.ref.rsplit(":", 1)[0]
    assert entry["repoTags"] == [pushed.ref]
    assert entry["repoDigests"] == [f"{repo}@{pushed.descriptor.digest}"]
    records = _ctr_images(env)
    for name in (pushed.ref, f"{repo}@{pushed.descriptor.digest}", pushed.config_digest):
        assert "io.cri-containerd.image=managed" in records[name]["labels"], name
    env.crictl.ok("rmi", pushed.ref)
    assert pushed.config_digest not in {i["id"] for i in env.crictl.json("images")["images"]}
    assert not set(_ctr_images(env)) & {pushed.ref, pushed.config_digest}
    missing = env.crictl.run("pull", registry.ref("cri/never-pushed", "x"))
    assert missing.returncode != 0 and b"not found" in missing.stderr.lower()


def test_pull_with_credentials(env, auth_registry):
    pushed = push_busybox(auth_registry, repo="cri/private")
    denied = env.crictl.run("pull", pushed.ref)
    assert denied.returncode != 0
    user, password = next(iter(USERS.items()))
    env.crictl.ok("pull", "--creds", f"{user}:{password}", pushed.ref)
    assert pushed.ref in {t for i in env.crictl.json("images")["images"] for t in i["repoTags"]}
    env.crictl.ok("rmi", pushed.ref)


def test_pod_and_container_lifecycle_with_logs_exec_and_stats(env, image):
    crictl = env.crictl
    pod, pod_config = run_pod(env, "life")
    inspected = crictl.json("inspectp", pod)
    ip = inspected["status"]["network"]["ip"]
    assert ip.startswith(POD_SUBNET.rsplit(".", 2)[0])
    netns_path = inspected["info"]["netNamespacePath"]
    assert os.path.ismount(netns_path)
    container = run_container(
        env,
        pod,
        pod_config,
        "app",
        image,
        ["sh", "-c", "echo out-line; echo err-line >&2; printf partial; sleep 1000"],
    )
    assert crictl.ok("ps", "-q").split() == [container]
    wait_for(lambda: b"out-line" in crictl.run("logs", container).stdout, timeout=10)
    logs = crictl.run("logs", container)
    assert logs.stdout.startswith(b"out-line") and b"err-line" in logs.stderr
    status = crictl.json("inspect", container)
    assert status["status"]["state"] == "CONTAINER_RUNNING"
    log_path = status["status"]["logPath"]
    lines = Path(log_path).read_bytes().splitlines()
    parsed = [CRI_LOG_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert {(m.group(1), m.group(3)) for m in parsed} >= {
        (b"stdout", b"out-line"),
        (b"stderr", b"err-line"),
    }
    # exec -s (ExecSync): inside the pod's network and UTS namespaces.
    out = crictl.ok("exec", "-s", container, "cat", "/proc/net/route")
    assert "eth0" in out
    failed = crictl.run("exec", "-s", container, "sh", "-c", "exit 3")
    assert failed.returncode != 0
    stats = crictl.json("stats", "--id", container)["stats"][0]
    assert int(stats["cpu"]["usageCoreNanoSeconds"]["value"]) > 0
    assert int(stats["memory"]["workingSetBytes"]["value"]) > 0
    pod_stats = crictl.json("statsp", "--id", pod)["stats"][0]
    assert pod_stats["attributes"]["id"] == pod
    linux = pod_stats["linux"]
    assert linux["network"]["defaultInterface"]["name"] == "eth0"
    assert "rxBytes" in linux["network"]["defaultInterface"]
    assert int(linux["process"]["processCount"]["value"]) >= 2  # pause and the app
    crictl.ok("stop", "--timeout", "2", container)
    status = crictl.json("inspect", container)["status"]
    assert status["state"] == "CONTAINER_EXITED" and status["exitCode"] != 0
    crictl.ok("rm", container)
    assert crictl.ok("ps", "-aq").split() == []
    crictl.ok("stopp", pod)
    assert not os.path.exists(netns_path)
    assert crictl.json("inspectp", pod)["status"]["state"] == "SANDBOX_NOTREADY"
    crictl.ok("rmp", pod)
    assert crictl.ok("pods", "-q").split() == []


def test_container_exits_with_its_code_and_log(env, image):
    pod, pod_config = run_pod(env, "exits")
    container = run_container(env, pod, pod_config, "job", image, ["sh", "-c", "echo bye; exit 7"])
    wait_for(
        lambda: env.crictl.json("inspect", container)["status"]["state"] == "CONTAINER_EXITED",
        timeout=15,
    )
    status = env.crictl.json("inspect", container)["status"]
    assert status["exitCode"] == 7 and status["reason"] == "Error"
    assert env.crictl.ok("logs", container) == "bye\n"
    env.crictl.ok("rmp", "-f", pod)


def test_host_network_pod(env, image):
    pod, pod_config = run_pod(env, "hostnet", host_network=True)
    assert env.crictl.json("inspectp", pod)["status"]["network"]["ip"] == ""
    container = run_container(env, pod, pod_config, "h", image, ["sleep", "1000"])
    devices = env.crictl.ok("exec", "-s", container, "cat", "/proc/net/dev")
    # The daemon's namespace (the test's): it holds the CNI bridge of the other pods.
    ours = env.in_netns("cat", "/proc/net/dev").stdout.decode()

    def names(table: str) -> list[str]:
        return sorted(line.split(":")[0].strip() for line in table.splitlines()[2:] if line)

    assert names(devices) == names(ours)
    env.crictl.ok("rmp", "-f", pod)


def test_two_containers_of_a_pod_reach_each_other_on_localhost(env, image):
    pod, pod_config = run_pod(env, "duo")
    run_container(
        env, pod, pod_config, "server", image, ["nc", "-ll", "-p", "8080", "-e", "echo", "hi-a"]
    )
    client = run_container(env, pod, pod_config, "client", image, ["sleep", "1000"])

    def answered() -> bool:
        out = env.crictl.run("exec", "-s", client, "sh", "-c", "nc 127.0.0.1 8080 </dev/null")
        return out.stdout.strip() == b"hi-a"

    wait_for(answered, timeout=15)
    env.crictl.ok("rmp", "-f", pod)


def test_port_mapping_from_the_test_namespace_into_a_pod(env, image):
    config = env.pod_config(
        "ports", port_mappings=[{"protocol": 0, "container_port": 8080, "host_port": 18080}]
    )
    pod = env.crictl.ok("runp", str(config)).strip()
    run_container(
        env, pod, str(config), "web", image, ["nc", "-ll", "-p", "8080", "-e", "echo", "mapped"]
    )
    gateway = POD_SUBNET.rsplit(".", 1)[0] + ".1"

    def answered() -> bool:
        out = env.in_netns("busybox", "nc", "-w", "2", gateway, "18080", timeout=10)
        return out.stdout.strip() == b"mapped"

    wait_for(answered, timeout=15)
    env.crictl.ok("rmp", "-f", pod)
    time.sleep(0.2)
    rules = env.in_netns("iptables-save", "-t", "nat").stdout.decode()
    assert "18080" not in rules


def test_pod_files_and_dns(env, image):
    config = env.pod_config(
        "dns",
        hostname="dnshost",
        dns_config={"servers": ["10.0.0.10"], "searches": ["svc.local"], "options": ["ndots:5"]},
        linux={"resources": {"cpu_shares": 512, "memory_limit_in_bytes": 1 << 28}},
    )
    pod = env.crictl.ok("runp", str(config)).strip()
    info = subprocess.run(
        ["ctr", "-a", str(env.daemon.address), "-n", "k8s.io", "containers", "info", pod],
        capture_output=True,
        check=True,
    ).stdout
    annotations = json.loads(info)["Spec"]["annotations"]
    assert annotations["io.kubernetes.cri.sandbox-cpu-shares"] == "512"
    assert annotations["io.kubernetes.cri.sandbox-memory"] == str(1 << 28)
    assert annotations["io.kubernetes.cri.container-type"] == "sandbox"
    container = run_container(env, pod, str(config), "c", image, ["sleep", "1000"])
    out = env.crictl.ok("exec", "-s", container, "sh", "-c", "hostname; cat /etc/resolv.conf")
    assert out.splitlines()[0] == "dnshost"
    assert "nameserver 10.0.0.10" in out and "search svc.local" in out and "ndots:5" in out
    env.crictl.ok("rmp", "-f", pod)


def test_filters_update_and_restart_with_a_new_attempt(env, image):
    crictl = env.crictl
    pod_config = env.pod_config("filters", labels={"tier": "web"})
    pod = crictl.ok("runp", str(pod_config)).strip()
    other = crictl.ok("runp", str(env.pod_config("other"))).strip()
    assert crictl.ok("pods", "-q", "--label", "tier=web").split() == [pod]
    assert set(crictl.ok("pods", "-q", "--state", "ready").split()) >= {pod, other}
    first = run_container(
        env, pod, str(pod_config), "job", image, ["sh", "-c", "exit 0"], labels={"role": "job"}
    )
    wait_for(lambda: state_of(env, first) == "CONTAINER_EXITED", timeout=10)
    assert crictl.ok("ps", "-aq", "--label", "role=job").split() == [first]
    assert crictl.ok("ps", "-q", "--pod", other).split() == []
    # kubelet restarts a container as a new one: same name, next attempt.
    again = env.container_config("job", image, ["sleep", "1000"], metadata={"name": "job"})
    duplicate = crictl.run("create", pod, str(again), str(pod_config))
    assert duplicate.returncode != 0 and b"reserved" in duplicate.stderr
    retry = env.container_config(
        "job", image, ["sleep", "1000"], metadata={"name": "job", "attempt": 1}
    )
    second = crictl.ok("create", pod, str(retry), str(pod_config)).strip()
    crictl.ok("start", second)
    assert second != first
    assert crictl.json("inspect", second)["status"]["metadata"]["attempt"] == 1
    # UpdateContainerResources reaches the container's cgroup.
    crictl.ok("update", "--memory", str(64 << 20), second)
    cgroup = Path("/sys/fs/cgroup/memory/k8s.io") / second / "memory.limit_in_bytes"
    if cgroup.exists():
        assert int(cgroup.read_text()) == 64 << 20
    out = crictl.ok("exec", "-s", second, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert int(out.split()[0]) == 64 << 20
    crictl.ok("rmp", "-f", pod, other)


def state_of(env: CRIEnv, container: str) -> str:
    return env.crictl.json("inspect", container)["status"]["state"]


def test_image_volume(env, image):
    crictl = env.crictl
    pod_config = str(env.pod_config("imgvol"))
    pod = crictl.ok("runp", pod_config).strip()
    image_id = crictl.json("inspecti", image)["status"]["id"]
    mounts = [
        {"container_path": "/img", "image": {"image": image}, "readonly": True},
        {"container_path": "/etc-of-img", "image": {"image": image}, "readonly": True}
        | {"image_sub_path": "etc"},
    ]
    container = run_container(env, pod, pod_config, "v", image, ["sleep", "1000"], mounts=mounts)
    crictl.ok("exec", "-s", container, "/img/bin/busybox", "true")
    assert "passwd" in crictl.ok("exec", "-s", container, "ls", "/etc-of-img")
    assert crictl.run("exec", "-s", container, "touch", "/img/x").returncode != 0
    reported = crictl.json("inspect", container)["status"]["mounts"]
    assert [m["image"]["imageRef"] for m in reported] == [image_id, image_id]
    state_dir = env.daemon.state / "io.containerd.grpc.v1.cri" / "image-volumes" / container
    assert str(state_dir / "0") in mounts_below(state_dir)
    crictl.ok("rm", "-f", container)
    assert not state_dir.exists()
    bad = env.container_config(
        "w", image, ["sleep", "1"], mounts=[{"container_path": "/img", "image": {"image": image}}]
    )
    refused = crictl.run("create", pod, str(bad), pod_config)
    assert refused.returncode != 0 and b"read-only" in refused.stderr
    crictl.ok("rmp", "-f", pod)

"""Bad CRI requests from a Python client: the right gRPC code, and nothing left behind
(no netns, mount, shim, container record, snapshot, cgroup, log file or IP allocation)."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import grpc
import pytest

from tests.support.cri import CRIEnv, cri_env
from tests.support.cri_client import CRIClient, cri
from tests.support.ctr_env import mounts_below
from tests.support.procs import all_pids, command_line

pytestmark = pytest.mark.e2e


#: The pods' cgroup parent, this module's own: other daemons on the machine use k8s.io.
CGROUP_PARENT = f"pcri-{uuid.uuid4().hex[:8]}"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@pytest.fixture(scope="module")
def env(registry, busybox_pushed):
    try:
        with cri_env(registry) as running:
            running.ctr_pull(busybox_pushed.ref)
            yield running
    finally:
        for parent in CGROUP_ROOT.glob(f"*/{CGROUP_PARENT}"):
            parent.rmdir()


@pytest.fixture(scope="module")
def client(env):
    with CRIClient(env.daemon.address) as c:
        yield c


def code_of(call, *args) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=60)
    return caught.value.code()


def pod_config(env: CRIEnv, name: str | None = None, **kwargs) -> cri.PodSandboxConfig:
    name = name or "bad-" + uuid.uuid4().hex[:6]
    linux = kwargs.pop("linux", cri.LinuxPodSandboxConfig())
    linux.cgroup_parent = CGROUP_PARENT
    config = cri.PodSandboxConfig(
        linux=linux,
        metadata=cri.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="test"),
        log_directory=str(env.logs / name),
        **kwargs,
    )
    return config


def container_config(image: str, name: str = "c", **kwargs) -> cri.ContainerConfig:
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=name),
        image=cri.ImageSpec(image=image),
        command=kwargs.pop("command", ["sleep", "1000"]),
        log_path=f"{name}.log",
        **kwargs,
    )


class Footprint:
    """What the daemon holds on the host: compared before and after a bad request."""

    def __init__(self, env: CRIEnv) -> None:
        self.env = env

    def take(self) -> dict[str, object]:
        env = self.env
        state = env.daemon.state / "io.containerd.grpc.v1.cri"
        ipam = env.base / "cni-ipam"
        ctr = os.popen(f"ctr -a {env.daemon.address} -n k8s.io containers ls -q 2>/dev/null").read()
        snaps = os.popen(
            f"ctr -a {env.daemon.address} -n k8s.io snapshots ls 2>/dev/null | wc -l"
        ).read()
        cgroups = CGROUP_ROOT / "memory" / CGROUP_PARENT
        return {
            "netns": sorted(os.listdir(state / "netns")) if (state / "netns").exists() else [],
            "mounts": sorted(mounts_below(env.base)),
            "records": sorted(ctr.split()),
            "snapshots": snaps.strip(),
            "cgroups": sorted(p.name for p in cgroups.iterdir() if p.is_dir())
            if cgroups.exists()
            else [],
            "ips": sorted(p.name for p in ipam.rglob("10.*")) if ipam.exists() else [],
            "logs": sorted(str(p) for p in env.logs.rglob("*")) if env.logs.exists() else [],
            "io": sorted(os.listdir(state / "io")) if (state / "io").exists() else [],
            "shims": sorted(_shims_of(env)),
        }


def _shims_of(env: CRIEnv) -> list[int]:
    """Shim processes of this test's daemon (others may run on the machine)."""
    found = []
    for pid in all_pids():
        argv = " ".join(command_line(pid))
        if "shim" in argv and str(env.base) in argv:
            found.append(pid)
    return found


@pytest.fixture
def unchanged(env):
    footprint = Footprint(env)
    before = footprint.take()
    yield
    after = footprint.take()
    assert after == before


def test_unknown_pod_and_container(client, unchanged):
    rt = client.runtime
    missing = uuid.uuid4().hex
    assert code_of(rt.PodSandboxStatus, cri.PodSandboxStatusRequest(pod_sandbox_id=missing)) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert code_of(rt.ContainerStatus, cri.ContainerStatusRequest(container_id=missing)) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert code_of(rt.StartContainer, cri.StartContainerRequest(container_id=missing)) == (
        grpc.StatusCode.NOT_FOUND
    )
    # Stop and remove are idempotent for kubelet's retries.
    rt.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=missing), timeout=30)
    rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=missing), timeout=30)
    rt.RemoveContainer(cri.RemoveContainerRequest(container_id=missing), timeout=30)
    assert code_of(rt.StopPodSandbox, cri.StopPodSandboxRequest()) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    request = cri.CreateContainerRequest(pod_sandbox_id=missing, config=container_config("busybox"))
    assert code_of(rt.CreateContainer, request) == grpc.StatusCode.NOT_FOUND


def test_missing_metadata_and_unknown_runtime_handler(env, client, unchanged):
    rt = client.runtime
    assert code_of(rt.RunPodSandbox, cri.RunPodSandboxRequest()) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    no_uid = cri.PodSandboxConfig(metadata=cri.PodSandboxMetadata(name="x", namespace="y"))
    assert code_of(rt.RunPodSandbox, cri.RunPodSandboxRequest(config=no_uid)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    request = cri.RunPodSandboxRequest(config=pod_config(env), runtime_handler="no-such-runtime")
    assert code_of(rt.RunPodSandbox, request) == grpc.StatusCode.NOT_FOUND


def test_a_pod_the_runtime_refuses_leaves_nothing(env, client, unchanged):
    """runc fails on an unknown sysctl after netns, CNI (an IP), snapshot and shim exist."""
    config = pod_config(env, linux=cri.LinuxPodSandboxConfig(sysctls={"net.ipv4.no_such": "1"}))
    code = code_of(client.runtime.RunPodSandbox, cri.RunPodSandboxRequest(config=config))
    assert code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)


def test_duplicate_names(env, client, busybox_pushed):
    rt = client.runtime
    config = pod_config(env)
    pod = rt.RunPodSandbox(cri.RunPodSandboxRequest(config=config), timeout=60).pod_sandbox_id
    try:
        footprint = Footprint(env)
        before = footprint.take()
        assert code_of(rt.RunPodSandbox, cri.RunPodSandboxRequest(config=config)) == (
            grpc.StatusCode.ALREADY_EXISTS
        )
        request = cri.CreateContainerRequest(
            pod_sandbox_id=pod,
            config=container_config(busybox_pushed.ref),
            sandbox_config=config,
        )
        rt.CreateContainer(request, timeout=60)
        middle = footprint.take()
        assert code_of(rt.CreateContainer, request) == grpc.StatusCode.ALREADY_EXISTS
        assert footprint.take() == middle
        assert before["netns"] == middle["netns"]
    finally:
        rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)


def test_bad_image_references(env, client, busybox_pushed, unchanged):
    images, rt = client.images, client.runtime
    for ref in ("UPPER/case:tag", "busybox@sha256:nothex", "a b"):
        assert code_of(
            images.ImageStatus, cri.ImageStatusRequest(image=cri.ImageSpec(image=ref))
        ) == (grpc.StatusCode.INVALID_ARGUMENT), ref
        assert code_of(images.PullImage, cri.PullImageRequest(image=cri.ImageSpec(image=ref))) in (
            grpc.StatusCode.INVALID_ARGUMENT,
        ), ref
    absent = cri.ImageStatusRequest(image=cri.ImageSpec(image="example.invalid/none:1"))
    assert not images.ImageStatus(absent, timeout=30).HasField("image")
    config = pod_config(env)
    pod = rt.RunPodSandbox(cri.RunPodSandboxRequest(config=config), timeout=60).pod_sandbox_id
    try:
        for ref, code in (
            ("UPPER/case", grpc.StatusCode.INVALID_ARGUMENT),
            ("", grpc.StatusCode.INVALID_ARGUMENT),
        ):
            request = cri.CreateContainerRequest(
                pod_sandbox_id=pod, config=container_config(ref), sandbox_config=config
            )
            assert code_of(rt.CreateContainer, request) == code, ref
    finally:
        rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)


def _security(**kwargs) -> cri.LinuxContainerConfig:
    return cri.LinuxContainerConfig(security_context=cri.LinuxContainerSecurityContext(**kwargs))


BAD_SECURITY = {
    "privileged in an unprivileged pod": (
        _security(privileged=True),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    "group without user": (
        _security(run_as_group=cri.Int64Value(value=5)),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    "localhost seccomp without a profile": (
        _security(seccomp=cri.SecurityProfile(profile_type=cri.SecurityProfile.Localhost)),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    "missing seccomp profile": (
        _security(
            seccomp=cri.SecurityProfile(
                profile_type=cri.SecurityProfile.Localhost, localhost_ref="/no/such/profile.json"
            )
        ),
        grpc.StatusCode.NOT_FOUND,
    ),
    "bad capability": (
        _security(capabilities=cri.Capability(add_capabilities=["NOT A CAP"])),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    "unknown user name": (
        _security(run_as_username="nosuchuser"),
        grpc.StatusCode.NOT_FOUND,
    ),
}


@pytest.fixture(scope="module")
def pod(env, client):
    config = pod_config(env, "secpod")
    pod_id = client.runtime.RunPodSandbox(
        cri.RunPodSandboxRequest(config=config), timeout=60
    ).pod_sandbox_id
    yield pod_id, config
    client.runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


@pytest.mark.parametrize("case", sorted(BAD_SECURITY))
def test_invalid_security_contexts(case, client, pod, busybox_pushed, unchanged):
    linux, code = BAD_SECURITY[case]
    pod_id, config = pod
    request = cri.CreateContainerRequest(
        pod_sandbox_id=pod_id,
        config=container_config(busybox_pushed.ref, linux=linux),
        sandbox_config=config,
    )
    assert code_of(client.runtime.CreateContainer, request) == code


def _has_sys_resource() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return False


def test_container_in_a_removed_or_stopped_pod(env, client, busybox_pushed, unchanged):
    rt = client.runtime
    config = pod_config(env)
    pod_id = rt.RunPodSandbox(cri.RunPodSandboxRequest(config=config), timeout=60).pod_sandbox_id
    rt.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    request = cri.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=container_config(busybox_pushed.ref), sandbox_config=config
    )
    assert code_of(rt.CreateContainer, request) == grpc.StatusCode.FAILED_PRECONDITION
    rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert code_of(rt.CreateContainer, request) == grpc.StatusCode.NOT_FOUND


def test_exec_sync_output_is_capped_and_timeouts_answer(env, client, busybox_pushed):
    rt = client.runtime
    config = pod_config(env)
    pod_id = rt.RunPodSandbox(cri.RunPodSandboxRequest(config=config), timeout=60).pod_sandbox_id
    try:
        created = rt.CreateContainer(
            cri.CreateContainerRequest(
                pod_sandbox_id=pod_id,
                config=container_config(busybox_pushed.ref),
                sandbox_config=config,
            ),
            timeout=60,
        ).container_id
        rt.StartContainer(cri.StartContainerRequest(container_id=created), timeout=60)
        before = Footprint(env).take()
        big = rt.ExecSync(
            cri.ExecSyncRequest(
                container_id=created, cmd=["sh", "-c", "yes | head -c 20000000"], timeout=60
            ),
            timeout=120,
        )
        from pycontainerd.cri.manager import EXEC_SYNC_OUTPUT_CAP

        assert len(big.stdout) == EXEC_SYNC_OUTPUT_CAP and big.exit_code == 0
        slow = cri.ExecSyncRequest(container_id=created, cmd=["sleep", "100"], timeout=1)
        assert code_of(rt.ExecSync, slow) == grpc.StatusCode.DEADLINE_EXCEEDED
        none = cri.ExecSyncRequest(container_id=created, cmd=[])
        assert code_of(rt.ExecSync, none) == grpc.StatusCode.INVALID_ARGUMENT
        assert Footprint(env).take() == before
    finally:
        rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


def test_streaming_calls_check_before_handing_out_a_url(client, pod, busybox_pushed):
    rt = client.runtime
    pod_id, config = pod
    created = rt.CreateContainer(
        cri.CreateContainerRequest(
            pod_sandbox_id=pod_id,
            config=container_config(busybox_pushed.ref, name="stream"),
            sandbox_config=config,
        ),
        timeout=60,
    ).container_id
    try:
        for request, code in (
            (cri.ExecRequest(container_id="nope", cmd=["sh"], stdout=True), "NOT_FOUND"),
            (cri.ExecRequest(container_id=created, cmd=["sh"], stdout=True), "FAILED_PRECONDITION"),
            (cri.ExecRequest(container_id=created, cmd=["sh"]), "INVALID_ARGUMENT"),
            (
                cri.ExecRequest(container_id=created, cmd=["sh"], tty=True, stderr=True),
                "INVALID_ARGUMENT",
            ),
            (cri.AttachRequest(container_id="nope", stdout=True), "NOT_FOUND"),
            (cri.AttachRequest(container_id=created, stdout=True), "FAILED_PRECONDITION"),
            (cri.PortForwardRequest(pod_sandbox_id="nope", port=[80]), "NOT_FOUND"),
            (cri.PortForwardRequest(port=[80]), "INVALID_ARGUMENT"),
        ):
            call = getattr(rt, type(request).__name__.removesuffix("Request"))
            assert code_of(call, request) == getattr(grpc.StatusCode, code), request
        url = rt.PortForward(cri.PortForwardRequest(pod_sandbox_id=pod_id, port=[80]), timeout=30)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/portforward/[\w-]{8}", url.url), url
    finally:
        rt.RemoveContainer(cri.RemoveContainerRequest(container_id=created), timeout=60)


def test_negative_oom_score_adj_is_raised_to_the_daemons_by_default(client, pod, busybox_pushed):
    pod_id, config = pod
    linux = cri.LinuxContainerConfig(resources=cri.LinuxContainerResources(oom_score_adj=-500))
    created = client.runtime.CreateContainer(
        cri.CreateContainerRequest(
            pod_sandbox_id=pod_id,
            config=container_config(busybox_pushed.ref, name="oom", linux=linux),
            sandbox_config=config,
        ),
        timeout=60,
    ).container_id
    try:
        client.runtime.StartContainer(cri.StartContainerRequest(container_id=created), timeout=60)
        out = client.runtime.ExecSync(
            cri.ExecSyncRequest(container_id=created, cmd=["cat", "/proc/self/oom_score_adj"]),
            timeout=60,
        )
        assert int(out.stdout) == int(Path("/proc/self/oom_score_adj").read_text())
    finally:
        client.runtime.RemoveContainer(cri.RemoveContainerRequest(container_id=created), timeout=60)


def test_unrestricted_oom_score_adj_without_cap_sys_resource_is_a_clear_error(registry):
    if _has_sys_resource():
        pytest.skip("this host grants CAP_SYS_RESOURCE: a negative oom_score_adj works here")
    with cri_env(registry, "  restrict_oom_score_adj = false\n") as strict:
        footprint = Footprint(strict)
        before = footprint.take()
        with CRIClient(strict.daemon.address) as c, pytest.raises(grpc.RpcError) as caught:
            c.runtime.RunPodSandbox(cri.RunPodSandboxRequest(config=pod_config(strict)), timeout=60)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "restrict_oom_score_adj" in caught.value.details()
        assert footprint.take() == before

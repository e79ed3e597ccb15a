"""OCI specs for pod sandboxes (the pause container) and CRI containers.

Built from the request over the image config with pycontainerd.oci's options,
following containerd's CRI: a container joins its sandbox's network, IPC and
UTS namespaces (``/proc/<pause pid>/ns/...``) and, per ``namespace_options.pid``,
its PID namespace; /etc/hosts, /etc/resolv.conf, /etc/hostname and /dev/shm
come from the sandbox.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycontainerd import errdefs, oci
from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.mount import MNT_DETACH, Mount, unmount
from pycontainerd.oci.devices import device_from_path
from pycontainerd.oci.spec import Spec, linux_of, mount, process_of, resources_of

from .state import NAMESPACE, Container, Sandbox

CONTAINER_TYPE = "io.kubernetes.cri.container-type"
SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
SANDBOX_NAME = "io.kubernetes.cri.sandbox-name"
SANDBOX_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
SANDBOX_UID = "io.kubernetes.cri.sandbox-uid"
CONTAINER_NAME = "io.kubernetes.cri.container-name"
IMAGE_NAME = "io.kubernetes.cri.image-name"
SANDBOX_CPU_PERIOD = "io.kubernetes.cri.sandbox-cpu-period"
SANDBOX_CPU_QUOTA = "io.kubernetes.cri.sandbox-cpu-quota"
SANDBOX_CPU_SHARES = "io.kubernetes.cri.sandbox-cpu-shares"
SANDBOX_MEMORY = "io.kubernetes.cri.sandbox-memory"
SANDBOX_OOM_SCORE_ADJ = -998
SHM_DIR = "shm"
CGROUP_MOUNT = mount(
    "/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]
)
SHM_OPTIONS = ["nosuid", "nodev", "noexec", "mode=1777", "size=65536k"]


@dataclass(frozen=True)
class Host:
    """What spec building needs to know of the node."""

    restrict_oom_score_adj: bool
    daemon_oom_score_adj: int
    can_lower_oom_score_adj: bool
    enable_unprivileged_ports: bool
    enable_unprivileged_icmp: bool
    # containerd's disable_hugetlb_controller (default true): kubelet's hugepage
    # limits are dropped, as a host without the hugetlb controller needs.
    disable_hugetlb_controller: bool = True


def own_oom_score_adj() -> int:
    try:
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def has_sys_resource() -> bool:
    """Whether this process may lower an oom_score_adj (CAP_SYS_RESOURCE, bit 24)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> 24 & 1)
    except OSError:
        pass
    return False


def _oom_score_adj(host: Host, wanted: int) -> int:
    if host.restrict_oom_score_adj:
        return max(wanted, host.daemon_oom_score_adj)
    if wanted < host.daemon_oom_score_adj and not host.can_lower_oom_score_adj:
        raise errdefs.FailedPrecondition(
            f"oom_score_adj {wanted} is below the daemon's ({host.daemon_oom_score_adj}) and this "
            "host does not grant CAP_SYS_RESOURCE; set restrict_oom_score_adj = true in "
            '[plugins."io.containerd.grpc.v1.cri"]'
        )
    return wanted


def cgroups_path(parent: str, object_id: str) -> str:
    if parent:
        return os.path.join("/", parent.strip("/"), object_id)
    return f"/{NAMESPACE}/{object_id}"


def _capability(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def _apply_capabilities(spec: Spec, caps: cri.Capability) -> None:
    added = [c.upper() for c in caps.add_capabilities]
    dropped = [c.upper() for c in caps.drop_capabilities]
    if "ALL" in added:
        oci.with_capabilities(oci.current_capabilities())(spec)
    if "ALL" in dropped:
        oci.with_capabilities([])(spec)
    oci.with_added_capabilities([_capability(c) for c in added if c != "ALL"])(spec)
    oci.with_dropped_capabilities([_capability(c) for c in dropped if c != "ALL"])(spec)
    if caps.add_ambient_capabilities:
        oci.with_ambient_capabilities([_capability(c) for c in caps.add_ambient_capabilities])(spec)


def _apply_seccomp(spec: Spec, profile: cri.SecurityProfile | None, legacy_path: str) -> None:
    """The ``seccomp`` field when set, else the deprecated ``seccomp_profile_path``."""
    if profile is not None:
        kind = profile.profile_type
        if kind == cri.SecurityProfile.RuntimeDefault:
            oci.with_seccomp_default(spec)
        elif kind == cri.SecurityProfile.Unconfined:
            oci.with_seccomp_unconfined(spec)
        else:
            if not profile.localhost_ref:
                raise errdefs.InvalidArgument("a Localhost seccomp profile needs localhost_ref")
            oci.with_seccomp_profile(profile.localhost_ref)(spec)
        return
    if legacy_path in ("runtime/default", "docker/default"):
        oci.with_seccomp_default(spec)
    elif legacy_path.startswith("localhost/"):
        oci.with_seccomp_profile(legacy_path.removeprefix("localhost/"))(spec)
    elif legacy_path in ("", "unconfined"):
        oci.with_seccomp_unconfined(spec)
    else:
        raise errdefs.InvalidArgument(f"unknown seccomp profile {legacy_path!r}")


def _apply_user(
    spec: Spec,
    rootfs: str | None,
    run_as_user: cri.Int64Value | None,
    run_as_group: cri.Int64Value | None,
    username: str,
    groups: list[int],
    strict: bool = False,
) -> None:
    """The process user; ``strict`` (SupplementalGroupsPolicy Strict) keeps the
    image's /etc/group out of the supplementary groups."""
    if run_as_group is not None and run_as_user is None and not username:
        raise errdefs.InvalidArgument("run_as_group needs run_as_user or run_as_username")
    if run_as_user is not None:
        user = str(run_as_user.value)
        if run_as_group is not None:
            user += f":{run_as_group.value}"
        oci.with_user(user, rootfs)(spec)
    elif username:
        user = username + (f":{run_as_group.value}" if run_as_group is not None else "")
        oci.with_user(user, rootfs)(spec)
    process = process_of(spec)
    if strict:
        process["user"].pop("additionalGids", None)
    if groups:
        extra = list(process["user"].get("additionalGids") or [])
        extra += [g for g in groups if g not in extra]
        process["user"]["additionalGids"] = extra


def _apply_resources(spec: Spec, res: cri.LinuxContainerResources, host: Host) -> None:
    if res.cpu_shares:
        oci.with_cpu_shares(res.cpu_shares)(spec)
    if res.cpu_quota:
        oci.with_cpu_cfs(res.cpu_quota, res.cpu_period or 100000)(spec)
    elif res.cpu_period:
        resources_of(spec).setdefault("cpu", {})["period"] = res.cpu_period
    if res.memory_limit_in_bytes:
        oci.with_memory_limit(res.memory_limit_in_bytes)(spec)
    if res.memory_swap_limit_in_bytes:
        resources_of(spec).setdefault("memory", {})["swap"] = res.memory_swap_limit_in_bytes
    if res.cpuset_cpus:
        resources_of(spec).setdefault("cpu", {})["cpus"] = res.cpuset_cpus
    if res.cpuset_mems:
        resources_of(spec).setdefault("cpu", {})["mems"] = res.cpuset_mems
    if res.hugepage_limits and not host.disable_hugetlb_controller:
        resources_of(spec)["hugepageLimits"] = [
            {"pageSize": h.page_size, "limit": h.limit} for h in res.hugepage_limits
        ]
    if res.unified:
        resources_of(spec)["unified"] = dict(res.unified)
    if res.oom_score_adj:
        process_of(spec)["oomScoreAdj"] = _oom_score_adj(host, res.oom_score_adj)


def resources_json(res: cri.LinuxContainerResources) -> dict[str, Any]:
    """The OCI ``linux.resources`` of an UpdateContainerResources request."""
    spec: Spec = {}
    host = Host(True, 0, False, True, True)
    _apply_resources(spec, res, host)
    out: dict[str, Any] = linux_of(spec).get("resources", {})
    return out


def _sysctls(spec: Spec, sysctls: Mapping[str, str], host: Host, host_network: bool) -> None:
    values = dict(sysctls)
    if not host_network:
        if host.enable_unprivileged_ports:
            values.setdefault("net.ipv4.ip_unprivileged_port_start", "0")
        if host.enable_unprivileged_icmp:
            values.setdefault("net.ipv4.ping_group_range", "0 2147483647")
    if values:
        linux_of(spec)["sysctl"] = values


def _namespaces(
    spec: Spec, options: cri.NamespaceOption, netns: str, pause_pid: int, target_pid: int
) -> None:
    """Join the sandbox's namespaces (pause_pid 0: this is the sandbox itself)."""
    if options.network == cri.NODE:
        oci.with_host_namespace("network")(spec)
    else:
        oci.with_linux_namespace("network", netns)(spec)
    for kind in ("ipc", "uts"):
        mode = options.ipc if kind == "ipc" else options.network
        if mode == cri.NODE:
            oci.with_host_namespace(kind)(spec)
        elif pause_pid:
            oci.with_linux_namespace(kind, f"/proc/{pause_pid}/ns/{kind}")(spec)
    if options.pid == cri.NODE:
        oci.with_host_namespace("pid")(spec)
    elif pause_pid and options.pid == cri.POD:
        oci.with_linux_namespace("pid", f"/proc/{pause_pid}/ns/pid")(spec)
    elif pause_pid and options.pid == cri.TARGET:
        if not target_pid:
            raise errdefs.NotFound(f"target container {options.target_id!r} is not running")
        oci.with_linux_namespace("pid", f"/proc/{target_pid}/ns/pid")(spec)


def sandbox_spec(
    sandbox: Sandbox,
    sandbox_dir: str,
    image_config: Mapping[str, Any],
    rootfs: str | None,
    host: Host,
) -> Spec:
    config = sandbox.config
    sec = config.linux.security_context
    spec = oci.generate_spec(NAMESPACE, sandbox.id, oci.with_image_config(image_config, rootfs))
    oci.with_process_cwd("/")(spec)
    process_of(spec)["noNewPrivileges"] = True
    if config.hostname and sec.namespace_options.network != cri.NODE:
        oci.with_hostname(config.hostname)(spec)
    _namespaces(spec, sec.namespace_options, sandbox.netns, 0, 0)
    oci.without_mounts("/dev/shm")(spec)
    oci.with_mounts([_shm_mount(sandbox, sandbox_dir)])(spec)
    oci.with_cgroup_path(cgroups_path(config.linux.cgroup_parent, sandbox.id))(spec)
    _sysctls(spec, config.linux.sysctls, host, sec.namespace_options.network == cri.NODE)
    if sec.privileged:
        oci.with_privileged(spec)
    else:
        _apply_seccomp(
            spec,
            sec.seccomp if sec.HasField("seccomp") else None,
            sec.seccomp_profile_path,
        )
    if sec.readonly_rootfs:
        oci.with_readonly_rootfs(spec)
    _apply_user(
        spec,
        rootfs,
        sec.run_as_user if sec.HasField("run_as_user") else None,
        sec.run_as_group if sec.HasField("run_as_group") else None,
        "",
        list(sec.supplemental_groups),
    )
    process_of(spec)["oomScoreAdj"] = _oom_score_adj(host, SANDBOX_OOM_SCORE_ADJ)
    # The pod's resources reach the runtime as containerd's annotations (VM runtimes size
    # the sandbox from them); the pod cgroup itself is kubelet's (cgroup_parent).
    pod_resources = {}
    if config.linux.HasField("resources"):
        res = config.linux.resources
        pod_resources = {
            SANDBOX_CPU_PERIOD: str(res.cpu_period),
            SANDBOX_CPU_QUOTA: str(res.cpu_quota),
            SANDBOX_CPU_SHARES: str(res.cpu_shares),
            SANDBOX_MEMORY: str(res.memory_limit_in_bytes),
        }
    oci.with_annotations(
        {
            **config.annotations,
            **pod_resources,
            CONTAINER_TYPE: "sandbox",
            SANDBOX_ID: sandbox.id,
            SANDBOX_NAME: config.metadata.name,
            SANDBOX_NAMESPACE: config.metadata.namespace,
            SANDBOX_UID: config.metadata.uid,
        }
    )(spec)
    return spec


def _shm_mount(sandbox: Sandbox, sandbox_dir: str) -> dict[str, Any]:
    """The pod's /dev/shm: the host's with host IPC, else the sandbox's own tmpfs."""
    if sandbox.config.linux.security_context.namespace_options.ipc == cri.NODE:
        source = "/dev/shm"
    else:
        source = os.path.join(sandbox_dir, SHM_DIR)
    return mount("/dev/shm", "bind", source, ["rbind", "rprivate", "rw"])


def _propagation(value: int) -> str:
    if value == cri.PROPAGATION_HOST_TO_CONTAINER:
        return "rslave"
    if value == cri.PROPAGATION_BIDIRECTIONAL:
        return "rshared"
    return "rprivate"


def container_spec(
    container: Container,
    sandbox: Sandbox,
    sandbox_dir: str,
    image_config: Mapping[str, Any],
    rootfs: str | None,
    pause_pid: int,
    target_pid: int,
    host: Host,
    image_volumes: Mapping[int, str] | None = None,
) -> Spec:
    """``image_volumes``: the host path mounted for each image volume, by mount index."""
    config = container.config
    image_volumes = image_volumes or {}
    sec = config.linux.security_context
    pod_sec = sandbox.config.linux.security_context
    args = list(config.args) or None
    spec = oci.generate_spec(
        NAMESPACE, container.id, oci.with_image_config(image_config, rootfs, args)
    )
    process = process_of(spec)
    if config.command:
        process["args"] = list(config.command) + list(config.args)
    if not process.get("args"):
        raise errdefs.InvalidArgument(
            "no command: the request names none and the image has no Entrypoint or Cmd"
        )
    process["noNewPrivileges"] = sec.no_new_privs
    if config.working_dir:
        oci.with_process_cwd(config.working_dir)(spec)
    env = [f"{kv.key}={kv.value}" for kv in config.envs]
    if sandbox.config.hostname:
        env.insert(0, f"HOSTNAME={sandbox.config.hostname}")
    process["env"] = oci.merge_env(process.get("env", []), env)
    if config.tty:
        oci.with_tty(spec)
    # Sandbox files, and the container's cgroups read-only (containerd's default mounts).
    mounts = (
        [CGROUP_MOUNT] if "/sys/fs/cgroup" not in {m.container_path for m in config.mounts} else []
    )
    destinations = {m.container_path for m in config.mounts}
    for name in ("hosts", "resolv.conf", "hostname"):
        if f"/etc/{name}" not in destinations:
            options = ["rbind", "rprivate", "ro" if sec.readonly_rootfs else "rw"]
            mounts.append(mount(f"/etc/{name}", "bind", os.path.join(sandbox_dir, name), options))
    if "/dev/shm" not in destinations:
        mounts.append(_shm_mount(sandbox, sandbox_dir))
    propagation = ""
    for index, m in enumerate(config.mounts):
        if index in image_volumes:
            options = ["rbind", "rprivate", "ro"]
            mounts.append(mount(m.container_path, "bind", image_volumes[index], options))
            continue
        if m.propagation == cri.PROPAGATION_BIDIRECTIONAL:
            propagation = "rshared"
        elif m.propagation == cri.PROPAGATION_HOST_TO_CONTAINER and not propagation:
            propagation = "rslave"
        if not m.host_path or not m.container_path:
            raise errdefs.InvalidArgument("a mount needs host_path and container_path")
        if not os.path.exists(m.host_path):
            raise errdefs.NotFound(f"mount source {m.host_path} does not exist")
        if m.recursive_read_only:
            if not m.readonly:
                raise errdefs.InvalidArgument(
                    f"recursive read-only mount of {m.host_path} must be read-only too"
                )
            if m.propagation != cri.PROPAGATION_PRIVATE:
                raise errdefs.InvalidArgument(
                    f"recursive read-only mount of {m.host_path} needs private propagation"
                )
        read_only = "rro" if m.recursive_read_only else "ro" if m.readonly else "rw"
        options = ["rbind", _propagation(m.propagation), read_only]
        mounts.append(mount(m.container_path, "bind", m.host_path, options))
    oci.without_mounts(*[m["destination"] for m in mounts])(spec)
    oci.with_mounts(mounts)(spec)
    if propagation:
        # Mount events reach the container (and, rshared, come back) only if its root
        # is not private, as containerd sets it.
        linux_of(spec)["rootfsPropagation"] = propagation
    # Namespaces, cgroup.
    options = cri.NamespaceOption()
    options.CopyFrom(pod_sec.namespace_options)
    if sec.HasField("namespace_options"):
        options.pid = sec.namespace_options.pid
        options.target_id = sec.namespace_options.target_id
    _namespaces(spec, options, sandbox.netns, pause_pid, target_pid)
    oci.with_cgroup_path(cgroups_path(sandbox.config.linux.cgroup_parent, container.id))(spec)
    # Security.
    if sec.privileged:
        if not pod_sec.privileged:
            raise errdefs.InvalidArgument(
                "a privileged container needs a privileged sandbox (security_context.privileged)"
            )
        oci.with_privileged(spec)
    else:
        if sec.HasField("capabilities"):
            _apply_capabilities(spec, sec.capabilities)
        if sec.masked_paths:
            oci.with_masked_paths(list(sec.masked_paths))(spec)
        if sec.readonly_paths:
            oci.with_readonly_paths(list(sec.readonly_paths))(spec)
        _apply_seccomp(
            spec,
            sec.seccomp if sec.HasField("seccomp") else None,
            sec.seccomp_profile_path,
        )
        for device in config.devices:
            _add_device(spec, device)
    if sec.readonly_rootfs:
        oci.with_readonly_rootfs(spec)
    _apply_user(
        spec,
        rootfs,
        sec.run_as_user if sec.HasField("run_as_user") else None,
        sec.run_as_group if sec.HasField("run_as_group") else None,
        sec.run_as_username,
        list(sec.supplemental_groups),
        sec.supplemental_groups_policy == cri.Strict,
    )
    if config.linux.HasField("resources"):
        _apply_resources(spec, config.linux.resources, host)
    oci.with_annotations(
        {
            **config.annotations,
            CONTAINER_TYPE: "container",
            SANDBOX_ID: sandbox.id,
            SANDBOX_NAME: sandbox.config.metadata.name,
            SANDBOX_NAMESPACE: sandbox.config.metadata.namespace,
            SANDBOX_UID: sandbox.config.metadata.uid,
            CONTAINER_NAME: config.metadata.name,
            IMAGE_NAME: container.image_name,
        }
    )(spec)
    return spec


def process_user(oci_spec: Spec) -> cri.ContainerUser:
    """The user a container's process runs as, for ContainerStatus (groups include the gid)."""
    user = oci_spec.get("process", {}).get("user", {})
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    groups = sorted({gid, *(int(g) for g in user.get("additionalGids") or [])})
    return cri.ContainerUser(
        linux=cri.LinuxContainerUser(uid=uid, gid=gid, supplemental_groups=groups)
    )


def _add_device(spec: Spec, device: cri.Device) -> None:
    permissions = device.permissions or "rwm"
    if set(permissions) - set("rwm"):
        raise errdefs.InvalidArgument(f"device permissions {permissions!r} must be of 'rwm'")
    try:
        entry = device_from_path(device.host_path)
    except FileNotFoundError as exc:
        raise errdefs.NotFound(f"device {device.host_path} does not exist") from exc
    if entry is None:
        raise errdefs.InvalidArgument(f"{device.host_path} is not a device")
    entry["path"] = device.container_path or device.host_path
    linux_of(spec).setdefault("devices", []).append(entry)
    resources_of(spec).setdefault("devices", []).append(
        {
            "allow": True,
            "type": entry["type"],
            "major": entry["major"],
            "minor": entry["minor"],
            "access": permissions,
        }
    )


def sandbox_files(sandbox: Sandbox, directory: str) -> None:
    """hostname, hosts and resolv.conf of a sandbox, for its containers to mount."""
    os.makedirs(directory, mode=0o711, exist_ok=True)
    config = sandbox.config
    hostname = config.hostname or os.uname().nodename
    if sandbox.host_network:
        hostname = os.uname().nodename
    with open(os.path.join(directory, "hostname"), "w") as f:
        f.write(hostname + "\n")
    if sandbox.host_network:
        try:
            with open("/etc/hosts") as f:
                hosts = f.read()
        except OSError:
            hosts = ""
    else:
        hosts = (
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
            "ff02::2\tip6-allrouters\n"
        )
    with open(os.path.join(directory, "hosts"), "w") as f:
        f.write(hosts)
    dns = config.dns_config
    if dns.servers or dns.searches or dns.options:
        lines = [f"search {' '.join(dns.searches)}"] if dns.searches else []
        lines += [f"nameserver {s}" for s in dns.servers]
        if dns.options:
            lines.append(f"options {' '.join(dns.options)}")
        resolv = "\n".join(lines) + "\n"
    else:
        try:
            with open("/etc/resolv.conf") as f:
                resolv = f.read()
        except OSError:
            resolv = ""
    with open(os.path.join(directory, "resolv.conf"), "w") as f:
        f.write(resolv)
    if config.linux.security_context.namespace_options.ipc != cri.NODE:
        shm = os.path.join(directory, SHM_DIR)
        os.makedirs(shm, mode=0o700, exist_ok=True)
        if not os.path.ismount(shm):
            Mount("tmpfs", "shm", options=list(SHM_OPTIONS)).mount(shm)


def remove_sandbox_files(directory: str) -> None:
    """Unmount the sandbox's /dev/shm and delete its files (gone already is fine)."""
    shm = os.path.join(directory, SHM_DIR)
    if os.path.ismount(shm):
        unmount(shm, flags=MNT_DETACH)
    shutil.rmtree(directory, ignore_errors=True)

"""The default OCI runtime spec for a Linux container, and how options apply to it.

A spec is a plain JSON-ready dict shaped like the OCI runtime spec's
config.json. Options (``SpecOpt``) are functions that mutate it in place,
applied in order, like containerd's ``oci.SpecOpts``. The defaults match
containerd 1.6's ``populateDefaultUnixSpec`` except that the process also
gets the default PATH in its environment (see ``DEFAULT_PATH_ENV``).
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Callable
from typing import Any

from pycontainerd.errdefs import InvalidArgument

Spec = dict[str, Any]
SpecOpt = Callable[[Spec], None]

OCI_VERSION = "1.0.2-dev"
DEFAULT_ROOTFS_PATH = "rootfs"
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

DEFAULT_NAMESPACES: tuple[str, ...] = ("pid", "ipc", "uts", "mount", "network")

DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
)

DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

_NOSUID_NOEXEC_NODEV = ["nosuid", "noexec", "nodev"]
_SMALL_TMPFS = ["nosuid", "strictatime", "mode=755", "size=65536k"]

# (destination, type, source, options)
_DEFAULT_MOUNTS: tuple[tuple[str, str, str, list[str]], ...] = (
    ("/proc", "proc", "proc", _NOSUID_NOEXEC_NODEV),
    ("/dev", "tmpfs", "tmpfs", _SMALL_TMPFS),
    (
        "/dev/pts",
        "devpts",
        "devpts",
        ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    ),
    ("/dev/shm", "tmpfs", "shm", [*_NOSUID_NOEXEC_NODEV, "mode=1777", "size=65536k"]),
    ("/dev/mqueue", "mqueue", "mqueue", _NOSUID_NOEXEC_NODEV),
    ("/sys", "sysfs", "sysfs", [*_NOSUID_NOEXEC_NODEV, "ro"]),
    ("/run", "tmpfs", "tmpfs", _SMALL_TMPFS),
)


def mount(destination: str, type_: str, source: str, options: list[str]) -> dict[str, Any]:
    """One entry of ``spec["mounts"]``."""
    return {"destination": destination, "type": type_, "source": source, "options": list(options)}


def default_mounts() -> list[dict[str, Any]]:
    return [mount(*entry) for entry in _DEFAULT_MOUNTS]


def default_cgroups_path(namespace: str, container_id: str) -> str:
    """``/<namespace>/<id>``, the cgroup containerd gives a container by default."""
    return posixpath.normpath(posixpath.join("/", namespace, container_id))


def _check_path_safe_name(what: str, name: str) -> None:
    """Both names become cgroup path components; refuse ones that would escape it."""
    if not name or "/" in name or name in (".", ".."):
        raise InvalidArgument(f"invalid {what} {name!r}: must be non-empty, without '/'")


def default_spec(namespace: str, container_id: str) -> Spec:
    """A fresh default Linux spec for container ``container_id`` in ``namespace``."""
    _check_path_safe_name("namespace", namespace)
    _check_path_safe_name("container id", container_id)
    caps = list(DEFAULT_CAPABILITIES)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "user": {"uid": 0, "gid": 0},
            "env": [DEFAULT_PATH_ENV],
            "cwd": "/",
            "capabilities": {
                "bounding": list(caps),
                "effective": list(caps),
                "permitted": list(caps),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": DEFAULT_ROOTFS_PATH},
        "mounts": default_mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "cgroupsPath": default_cgroups_path(namespace, container_id),
            "namespaces": [{"type": ns} for ns in DEFAULT_NAMESPACES],
            "maskedPaths": list(DEFAULT_MASKED_PATHS),
            "readonlyPaths": list(DEFAULT_READONLY_PATHS),
        },
    }


def apply_opts(spec: Spec, *opts: SpecOpt) -> Spec:
    """Apply ``opts`` in order to ``spec`` (in place) and return it."""
    for opt in opts:
        opt(spec)
    return spec


def generate_spec(namespace: str, container_id: str, *opts: SpecOpt) -> Spec:
    """The default spec with ``opts`` applied."""
    return apply_opts(default_spec(namespace, container_id), *opts)


def compose(*opts: SpecOpt) -> SpecOpt:
    """One option that applies ``opts`` in order."""

    def composed(spec: Spec) -> None:
        apply_opts(spec, *opts)

    return composed


def copy_spec(spec: Spec) -> Spec:
    """A deep copy, so a caller can derive a spec without touching the original."""
    return copy.deepcopy(spec)


# Accessors that create a section when missing (containerd's setProcess & co.).


def process_of(spec: Spec) -> dict[str, Any]:
    process = spec.setdefault("process", {})
    process.setdefault("user", {"uid": 0, "gid": 0})
    process.setdefault("cwd", "/")
    return process


def linux_of(spec: Spec) -> dict[str, Any]:
    return spec.setdefault("linux", {})


def resources_of(spec: Spec) -> dict[str, Any]:
    return linux_of(spec).setdefault("resources", {})


def capabilities_of(spec: Spec) -> dict[str, Any]:
    return process_of(spec).setdefault("capabilities", {})


def root_of(spec: Spec) -> dict[str, Any]:
    return spec.setdefault("root", {"path": DEFAULT_ROOTFS_PATH})

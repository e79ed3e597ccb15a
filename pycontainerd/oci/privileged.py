"""Privileged containers, as ``ctr run --privileged`` makes them."""

from __future__ import annotations

from pycontainerd.oci.capabilities import current_capabilities
from pycontainerd.oci.devices import with_all_devices_allowed, with_host_devices
from pycontainerd.oci.linux import with_masked_paths, with_readonly_paths
from pycontainerd.oci.process import with_capabilities
from pycontainerd.oci.seccomp import with_seccomp_unconfined
from pycontainerd.oci.spec import Spec, process_of


def _make_mounts_writable(spec: Spec, mount_type: str) -> None:
    for entry in spec.get("mounts", []):
        if entry.get("type") == mount_type:
            entry["options"] = ["rw" if o == "ro" else o for o in entry.get("options", [])]


def with_privileged(spec: Spec) -> None:
    """All of our capabilities, no masked or read-only paths, writable sysfs and
    cgroupfs, no LSM labels, no seccomp, every device allowed and created."""
    with_capabilities(current_capabilities())(spec)
    with_masked_paths([])(spec)
    with_readonly_paths([])(spec)
    _make_mounts_writable(spec, "sysfs")
    _make_mounts_writable(spec, "cgroup")
    process = process_of(spec)
    process.pop("selinuxLabel", None)
    process.pop("apparmorProfile", None)
    with_seccomp_unconfined(spec)
    with_all_devices_allowed(spec)
    with_host_devices(spec)

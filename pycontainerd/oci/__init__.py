"""OCI runtime spec building: a default Linux spec plus composable options.

Usage::

    spec = generate_spec(
        "default", "web",
        with_image_config(config_json, rootfs=mounted_rootfs),
        with_env(["DEBUG=1"]),
        with_memory_limit(256 << 20),
    )
    (bundle / "config.json").write_text(json.dumps(spec))

Names load on first use (PEP 562): the shim imports `pycontainerd.oci.runtime`
and must not pay for the spec builder, seccomp profile and the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Each public name and the submodule that defines it.
_SOURCES: dict[str, str] = {
    "KNOWN_CAPABILITIES": "capabilities",
    "current_capabilities": "capabilities",
    "host_devices": "devices",
    "with_all_devices_allowed": "devices",
    "with_default_unix_devices": "devices",
    "with_host_devices": "devices",
    "with_linux_device": "devices",
    "with_image_config": "image_config",
    "with_annotations": "linux",
    "with_cgroup_path": "linux",
    "with_cpu_cfs": "linux",
    "with_cpu_shares": "linux",
    "with_cpus": "linux",
    "with_host_hosts_file": "linux",
    "with_host_namespace": "linux",
    "with_host_network": "linux",
    "with_host_resolvconf": "linux",
    "with_hostname": "linux",
    "with_linux_namespace": "linux",
    "with_masked_paths": "linux",
    "with_memory_limit": "linux",
    "with_mounts": "linux",
    "with_pids_limit": "linux",
    "with_readonly_paths": "linux",
    "with_readonly_rootfs": "linux",
    "with_rootfs_path": "linux",
    "without_mounts": "linux",
    "with_privileged": "privileged",
    "merge_env": "process",
    "with_added_capabilities": "process",
    "with_ambient_capabilities": "process",
    "with_capabilities": "process",
    "with_dropped_capabilities": "process",
    "with_env": "process",
    "with_no_new_privileges": "process",
    "with_process_args": "process",
    "with_process_cwd": "process",
    "with_rlimit": "process",
    "with_tty": "process",
    "with_tty_size": "process",
    "with_uid_gid": "process",
    "default_profile": "seccomp",
    "with_seccomp_default": "seccomp",
    "with_seccomp_profile": "seccomp",
    "with_seccomp_unconfined": "seccomp",
    "DEFAULT_CAPABILITIES": "spec",
    "DEFAULT_MASKED_PATHS": "spec",
    "DEFAULT_PATH_ENV": "spec",
    "DEFAULT_READONLY_PATHS": "spec",
    "OCI_VERSION": "spec",
    "Spec": "spec",
    "SpecOpt": "spec",
    "apply_opts": "spec",
    "compose": "spec",
    "copy_spec": "spec",
    "default_spec": "spec",
    "generate_spec": "spec",
    "resolve_user": "users",
    "with_supplementary_groups": "users",
    "with_user": "users",
}

if TYPE_CHECKING:
    from pycontainerd.oci.capabilities import (
        KNOWN_CAPABILITIES,
        current_capabilities,
    )
    from pycontainerd.oci.devices import (
        host_devices,
        with_all_devices_allowed,
        with_default_unix_devices,
        with_host_devices,
        with_linux_device,
    )
    from pycontainerd.oci.image_config import (
        with_image_config,
    )
    from pycontainerd.oci.linux import (
        with_annotations,
        with_cgroup_path,
        with_cpu_cfs,
        with_cpu_shares,
        with_cpus,
        with_host_hosts_file,
        with_host_namespace,
        with_host_network,
        with_host_resolvconf,
        with_hostname,
        with_linux_namespace,
        with_masked_paths,
        with_memory_limit,
        with_mounts,
        with_pids_limit,
        with_readonly_paths,
        with_readonly_rootfs,
        with_rootfs_path,
        without_mounts,
    )
    from pycontainerd.oci.privileged import (
        with_privileged,
    )
    from pycontainerd.oci.process import (
        merge_env,
        with_added_capabilities,
        with_ambient_capabilities,
        with_capabilities,
        with_dropped_capabilities,
        with_env,
        with_no_new_privileges,
        with_process_args,
        with_process_cwd,
        with_rlimit,
        with_tty,
        with_tty_size,
        with_uid_gid,
    )
    from pycontainerd.oci.seccomp import (
        default_profile,
        with_seccomp_default,
        with_seccomp_profile,
        with_seccomp_unconfined,
    )
    from pycontainerd.oci.spec import (
        DEFAULT_CAPABILITIES,
        DEFAULT_MASKED_PATHS,
        DEFAULT_PATH_ENV,
        DEFAULT_READONLY_PATHS,
        OCI_VERSION,
        Spec,
        SpecOpt,
        apply_opts,
        compose,
        copy_spec,
        default_spec,
        generate_spec,
    )
    from pycontainerd.oci.users import (
        resolve_user,
        with_supplementary_groups,
        with_user,
    )

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_MASKED_PATHS",
    "DEFAULT_PATH_ENV",
    "DEFAULT_READONLY_PATHS",
    "KNOWN_CAPABILITIES",
    "OCI_VERSION",
    "Spec",
    "SpecOpt",
    "apply_opts",
    "compose",
    "copy_spec",
    "current_capabilities",
    "default_profile",
    "default_spec",
    "generate_spec",
    "host_devices",
    "merge_env",
    "resolve_user",
    "with_added_capabilities",
    "with_all_devices_allowed",
    "with_ambient_capabilities",
    "with_annotations",
    "with_capabilities",
    "with_cgroup_path",
    "with_cpu_cfs",
    "with_cpu_shares",
    "with_cpus",
    "with_default_unix_devices",
    "with_dropped_capabilities",
    "with_env",
    "with_host_devices",
    "with_host_hosts_file",
    "with_host_namespace",
    "with_host_network",
    "with_host_resolvconf",
    "with_hostname",
    "with_image_config",
    "with_linux_device",
    "with_linux_namespace",
    "with_masked_paths",
    "with_memory_limit",
    "with_mounts",
    "with_no_new_privileges",
    "with_pids_limit",
    "with_privileged",
    "with_process_args",
    "with_process_cwd",
    "with_readonly_paths",
    "with_readonly_rootfs",
    "with_rlimit",
    "with_rootfs_path",
    "with_seccomp_default",
    "with_seccomp_profile",
    "with_seccomp_unconfined",
    "with_supplementary_groups",
    "with_tty",
    "with_tty_size",
    "with_uid_gid",
    "with_user",
    "without_mounts",
]


def __getattr__(name: str) -> Any:
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_SOURCES])

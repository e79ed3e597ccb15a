"""Options for the container's environment: namespaces, mounts, cgroups, resources."""

from __future__ import annotations

import posixpath
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.oci.process import with_env
from pycontainerd.oci.spec import Spec, SpecOpt, linux_of, mount, resources_of, root_of

NAMESPACE_TYPES = frozenset({"pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"})
CFS_DEFAULT_PERIOD = 100_000
"""Microseconds; ``with_cpus(1.5)`` means a quota of 150000 per this period."""


def with_hostname(name: str) -> SpecOpt:
    def opt(spec: Spec) -> None:
        spec["hostname"] = name

    return opt


def with_annotations(annotations: Mapping[str, str]) -> SpecOpt:
    """Add or replace annotations."""
    items = dict(annotations)

    def opt(spec: Spec) -> None:
        spec.setdefault("annotations", {}).update(items)

    return opt


def with_readonly_rootfs(spec: Spec) -> None:
    root_of(spec)["readonly"] = True


def with_rootfs_path(path: str) -> SpecOpt:
    """Use ``path`` (relative to the bundle, or absolute) as the root filesystem."""

    def opt(spec: Spec) -> None:
        root_of(spec)["path"] = path

    return opt


def with_mounts(mounts: Iterable[Mapping[str, Any]]) -> SpecOpt:
    """Append mounts (dicts with destination, type, source, options)."""
    entries = [dict(m) for m in mounts]
    for entry in entries:
        destination = entry.get("destination", "")
        if not isinstance(destination, str) or not destination.startswith("/"):
            raise InvalidArgument(f"mount destination {destination!r} must be an absolute path")

    def opt(spec: Spec) -> None:
        spec.setdefault("mounts", []).extend(entries)

    return opt


def without_mounts(*destinations: str) -> SpecOpt:
    """Remove the mounts at these destinations."""
    wanted = set(destinations)

    def opt(spec: Spec) -> None:
        spec["mounts"] = [
            m for m in spec.get("mounts", []) if posixpath.normpath(m["destination"]) not in wanted
        ]

    return opt


def _host_file_bind(path: str) -> dict[str, Any]:
    return mount(path, "bind", path, ["rbind", "ro"])


def with_host_hosts_file(spec: Spec) -> None:
    with_mounts([_host_file_bind("/etc/hosts")])(spec)


def with_host_resolvconf(spec: Spec) -> None:
    with_mounts([_host_file_bind("/etc/resolv.conf")])(spec)


def with_linux_namespace(type_: str, path: str = "") -> SpecOpt:
    """Use a new namespace of ``type_``, or join the one at ``path``."""
    if type_ not in NAMESPACE_TYPES:
        raise InvalidArgument(f"unknown namespace type {type_!r}; use {sorted(NAMESPACE_TYPES)}")
    entry = {"type": type_, **({"path": path} if path else {})}

    def opt(spec: Spec) -> None:
        namespaces = linux_of(spec).setdefault("namespaces", [])
        for i, existing in enumerate(namespaces):
            if existing.get("type") == type_:
                namespaces[i] = dict(entry)
                return
        namespaces.append(dict(entry))

    return opt


def with_host_namespace(type_: str) -> SpecOpt:
    """Share the host's namespace of ``type_`` (drop it from the spec)."""
    if type_ not in NAMESPACE_TYPES:
        raise InvalidArgument(f"unknown namespace type {type_!r}; use {sorted(NAMESPACE_TYPES)}")

    def opt(spec: Spec) -> None:
        linux = linux_of(spec)
        linux["namespaces"] = [n for n in linux.get("namespaces", []) if n.get("type") != type_]

    return opt


def with_host_network(spec: Spec) -> None:
    """Host networking as ``ctr run --net-host``: host netns, hosts/resolv.conf, HOSTNAME."""
    with_host_namespace("network")(spec)
    with_host_hosts_file(spec)
    with_host_resolvconf(spec)
    with_env([f"HOSTNAME={socket.gethostname()}"])(spec)


def with_cgroup_path(path: str) -> SpecOpt:
    """Set linux.cgroupsPath ("" lets the runtime decide)."""

    def opt(spec: Spec) -> None:
        linux_of(spec)["cgroupsPath"] = path

    return opt


def with_masked_paths(paths: Iterable[str]) -> SpecOpt:
    return _with_path_list("maskedPaths", paths)


def with_readonly_paths(paths: Iterable[str]) -> SpecOpt:
    return _with_path_list("readonlyPaths", paths)


def _with_path_list(key: str, paths: Iterable[str]) -> SpecOpt:
    values = list(paths)

    def opt(spec: Spec) -> None:
        linux = linux_of(spec)
        if values:
            linux[key] = list(values)
        else:
            linux.pop(key, None)

    return opt


def with_memory_limit(limit_bytes: int) -> SpecOpt:
    if limit_bytes <= 0:
        raise InvalidArgument(f"memory limit must be a positive number of bytes, not {limit_bytes}")

    def opt(spec: Spec) -> None:
        resources_of(spec).setdefault("memory", {})["limit"] = limit_bytes

    return opt


def with_cpu_cfs(quota: int, period: int = CFS_DEFAULT_PERIOD) -> SpecOpt:
    """CFS bandwidth: ``quota`` microseconds of CPU time per ``period`` (-1 quota: none)."""
    if period <= 0 or (quota <= 0 and quota != -1):
        raise InvalidArgument(f"invalid CFS quota/period {quota}/{period}")

    def opt(spec: Spec) -> None:
        cpu = resources_of(spec).setdefault("cpu", {})
        cpu["quota"] = quota
        cpu["period"] = period

    return opt


def with_cpus(cpus: float, period: int = CFS_DEFAULT_PERIOD) -> SpecOpt:
    """Limit to ``cpus`` CPUs' worth of time, like ``ctr run --cpus``."""
    if cpus <= 0:
        raise InvalidArgument(f"cpus must be positive, not {cpus}")
    return with_cpu_cfs(int(cpus * period), period)


def with_cpu_shares(shares: int) -> SpecOpt:
    def opt(spec: Spec) -> None:
        resources_of(spec).setdefault("cpu", {})["shares"] = shares

    return opt


def with_pids_limit(limit: int) -> SpecOpt:
    def opt(spec: Spec) -> None:
        resources_of(spec)["pids"] = {"limit": limit}

    return opt

"""Device nodes: the default cgroup allow-list, host device discovery, device options."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from pycontainerd.errdefs import InvalidArgument, NotFound
from pycontainerd.oci.spec import Spec, SpecOpt, linux_of, resources_of

# Directories under /dev that hold no devices of their own or are mounted per container.
_SKIPPED_DEV_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})

# (type, major, minor or None for any): null, random, full, tty, zero, urandom,
# console, any pty slave (136:*), ptmx.
_DEFAULT_UNIX_DEVICES: tuple[tuple[str, int, int | None], ...] = (
    ("c", 1, 3),
    ("c", 1, 8),
    ("c", 1, 7),
    ("c", 5, 0),
    ("c", 1, 5),
    ("c", 1, 9),
    ("c", 5, 1),
    ("c", 136, None),
    ("c", 5, 2),
)


def _cgroup_rule(type_: str, major: int, minor: int | None, access: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"allow": True, "type": type_, "major": major}
    if minor is not None:
        rule["minor"] = minor
    rule["access"] = access
    return rule


def with_default_unix_devices(spec: Spec) -> None:
    """Allow the usual /dev nodes (null, zero, tty, ptys...) in the device cgroup."""
    rules = resources_of(spec).setdefault("devices", [])
    rules.extend(_cgroup_rule(t, major, minor, "rwm") for t, major, minor in _DEFAULT_UNIX_DEVICES)


def with_all_devices_allowed(spec: Spec) -> None:
    resources_of(spec)["devices"] = [{"allow": True, "access": "rwm"}]


def device_from_path(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The spec entry for a block or char device node, or None if ``path`` is not one."""
    st = os.lstat(path)
    if stat.S_ISBLK(st.st_mode):
        type_ = "b"
    elif stat.S_ISCHR(st.st_mode):
        type_ = "c"
    else:
        return None
    return {
        "path": os.fspath(path),
        "type": type_,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def host_devices(dev_dir: Path = Path("/dev")) -> list[dict[str, Any]]:
    """Every device node under ``dev_dir`` (recursively, skipping pts, shm, ...)."""
    found: list[dict[str, Any]] = []
    for entry in sorted(os.scandir(dev_dir), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in _SKIPPED_DEV_DIRS:
                found.extend(host_devices(Path(entry.path)))
            continue
        if entry.name == "console":
            continue
        try:
            device = device_from_path(entry.path)
        except FileNotFoundError:
            continue  # vanished while scanning
        if device is not None:
            found.append(device)
    return found


def with_host_devices(spec: Spec) -> None:
    """Create all of the host's device nodes in the container (for privileged use)."""
    linux_of(spec).setdefault("devices", []).extend(host_devices())


def with_linux_device(path: str, permissions: str = "rwm") -> SpecOpt:
    """Add the host device at ``path`` and allow it in the device cgroup."""
    if not permissions or set(permissions) - set("rwm"):
        raise InvalidArgument(f"device permissions {permissions!r} must be letters of 'rwm'")

    def opt(spec: Spec) -> None:
        try:
            device = device_from_path(path)
        except FileNotFoundError as exc:
            raise NotFound(f"device {path} does not exist on this host") from exc
        if device is None:
            raise InvalidArgument(f"{path} is not a block or character device")
        linux_of(spec).setdefault("devices", []).append(device)
        rule = _cgroup_rule(device["type"], device["major"], device["minor"], permissions)
        resources_of(spec).setdefault("devices", []).append(rule)

    return opt

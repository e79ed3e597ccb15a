"""Putting a shim into the cgroup the runc options' ``shim_cgroup`` names.

As containerd's runc shim does at ``start``: on a host with cgroup v1
hierarchies (legacy or hybrid) the shim joins the cgroup in every hierarchy
where it exists; on a unified (v2 only) host, the one v2 cgroup. The cgroup
must exist; creating it (and its limits) is the caller's business.
"""

from __future__ import annotations

from pathlib import Path

from pycontainerd import errdefs
from pycontainerd.shim_v2.cgroup_stats import hierarchy_mounts

MOUNTINFO = Path("/proc/self/mountinfo")


def _unified_mount(mountinfo: str) -> Path | None:
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" in fields and fields[fields.index("-") + 1] == "cgroup2":
            return Path(fields[4])
    return None


def cgroup_dirs(path: str, mountinfo: str) -> list[Path]:
    """The directories of cgroup `path` that exist, one per hierarchy it is in."""
    relative = path.strip("/")
    v1 = sorted(set(hierarchy_mounts(mountinfo).values()))
    unified = _unified_mount(mountinfo)
    roots = v1 if v1 else [unified] if unified is not None else []
    return [root / relative for root in roots if (root / relative).is_dir()]


def join_cgroup(path: str, pid: int) -> None:
    """Move process `pid` into cgroup `path` (e.g. ``/pods/shims``)."""
    directories = cgroup_dirs(path, MOUNTINFO.read_text())
    if not directories:
        raise errdefs.NotFound(
            f"failed to load cgroup {path}: it exists in no cgroup hierarchy; create it "
            "before asking for it as shim_cgroup"
        )
    for directory in directories:
        try:
            (directory / "cgroup.procs").write_text(str(pid))
        except OSError as exc:
            raise errdefs.FailedPrecondition(f"failed to join cgroup {path}: {exc}") from exc

"""A container's statistics read straight from its cgroup v1 hierarchies.

For runtimes without ``events --stats`` (crun 1.8 has no ``events`` command):
the result has the shape of the ``data`` object runc prints for a stats event,
so :func:`pycontainerd.shim_v2.metrics.metrics_from_stats` serves both. The
cgroup is the one the container's init is in (``/proc/<pid>/cgroup``); each
controller's hierarchy is found in this process's mount table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pycontainerd import errdefs

_NANOSECONDS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def hierarchy_mounts(mountinfo: str) -> dict[str, Path]:
    """Where each cgroup v1 controller is mounted: {"memory": /sys/fs/cgroup/memory, ...}."""
    found: dict[str, Path] = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        try:
            separator = fields.index("-")
        except ValueError:
            continue
        if fields[separator + 1] != "cgroup" or len(fields) < separator + 4:
            continue
        for option in fields[separator + 3].split(","):
            found.setdefault(option.removeprefix("name="), Path(fields[4]))
    return found


def process_cgroups(proc_cgroup: str) -> dict[str, str]:
    """A process's cgroup per v1 controller, from ``/proc/<pid>/cgroup``."""
    found: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            if controller:
                found[controller.removeprefix("name=")] = path
    return found


class CgroupReader:
    """Reads the files of one process's cgroups; a missing file reads as nothing."""

    def __init__(self, mounts: dict[str, Path], cgroups: dict[str, str]) -> None:
        self.directories = {
            controller: mounts[controller] / path.lstrip("/")
            for controller, path in cgroups.items()
            if controller in mounts
        }

    def text(self, controller: str, name: str) -> str:
        directory = self.directories.get(controller)
        if directory is None:
            return ""
        try:
            return (directory / name).read_text()
        except OSError:
            return ""

    def number(self, controller: str, name: str) -> int:
        value = self.text(controller, name).strip()
        return int(value) if value.isdigit() else 0

    def table(self, controller: str, name: str) -> dict[str, int]:
        """A ``key value`` per line file (memory.stat, cpu.stat, cpuacct.stat)."""
        table: dict[str, int] = {}
        for line in self.text(controller, name).splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                table[key] = int(value)
        return table


def _memory_entry(reader: CgroupReader, prefix: str) -> dict[str, int]:
    return {
        "usage": reader.number("memory", f"{prefix}.usage_in_bytes"),
        "max": reader.number("memory", f"{prefix}.max_usage_in_bytes"),
        "limit": reader.number("memory", f"{prefix}.limit_in_bytes"),
        "failcnt": reader.number("memory", f"{prefix}.failcnt"),
    }


def stats_of(reader: CgroupReader) -> dict[str, Any]:
    """runc's stats object from what `reader` finds."""
    cpu_ticks = reader.table("cpuacct", "cpuacct.stat")
    throttling = reader.table("cpu", "cpu.stat")
    raw_memory = reader.table("memory", "memory.stat")
    percpu = reader.text("cpuacct", "cpuacct.usage_percpu").split()
    return {
        "cpu": {
            "usage": {
                "total": reader.number("cpuacct", "cpuacct.usage"),
                "percpu": [int(v) for v in percpu if v.isdigit()],
                "user": cpu_ticks.get("user", 0) * _NANOSECONDS_PER_TICK,
                "kernel": cpu_ticks.get("system", 0) * _NANOSECONDS_PER_TICK,
            },
            "throttling": {
                "periods": throttling.get("nr_periods", 0),
                "throttledPeriods": throttling.get("nr_throttled", 0),
                "throttledTime": throttling.get("throttled_time", 0),
            },
        },
        "memory": {
            "cache": raw_memory.get("cache", 0),
            "usage": _memory_entry(reader, "memory"),
            "swap": _memory_entry(reader, "memory.memsw"),
            "kernel": _memory_entry(reader, "memory.kmem"),
            "kernelTCP": _memory_entry(reader, "memory.kmem.tcp"),
            "raw": raw_memory,
        },
        "pids": {
            "current": reader.number("pids", "pids.current"),
            "limit": reader.number("pids", "pids.max"),  # "max" (no limit) reads as 0
        },
    }


def stats_from_cgroups(pid: int) -> dict[str, Any]:
    """The stats of the cgroups process `pid` is in; NotFound if it is gone."""
    try:
        proc_cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError as exc:
        raise errdefs.NotFound(f"cannot read the cgroups of process {pid}: {exc}") from exc
    mounts = hierarchy_mounts(Path("/proc/self/mountinfo").read_text())
    reader = CgroupReader(mounts, process_cgroups(proc_cgroup))
    if not reader.directories:
        raise errdefs.FailedPrecondition(
            f"process {pid} is in no cgroup v1 hierarchy mounted here; no statistics to read"
        )
    return stats_of(reader)

"""ListMetricDescriptors and ListPodSandboxMetrics: cAdvisor-named metrics of pods' containers.

Values come from the container's cgroup statistics (the task's stats), its
processes' /proc entries, its snapshot's usage and its CRI config; network
counters are the pod's (its namespace's ``eth0``). Every metric carries the
same labels as its descriptor. Pressure (PSI), hugetlb and ulimit metrics are
not collected: critest lists them as not yet implemented by runtimes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pycontainerd.api.cgroups.v1 import metrics_pb2
from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri

LABELS = ("container", "id", "image", "name", "namespace", "pod")
NETWORK_LABELS = (*LABELS, "interface")
DEVICE_LABELS = (*LABELS, "device")
FAILURE_LABELS = (*LABELS, "failure_type", "scope")

COUNTER, GAUGE = cri.COUNTER, cri.GAUGE


@dataclass(frozen=True)
class Desc:
    name: str
    help: str
    labels: tuple[str, ...] = LABELS
    kind: int = GAUGE


DESCRIPTORS: tuple[Desc, ...] = (
    Desc("container_blkio_device_usage_total", "Blkio device bytes usage", DEVICE_LABELS, COUNTER),
    Desc("container_cpu_cfs_periods_total", "Number of elapsed enforcement periods", kind=COUNTER),
    Desc("container_cpu_cfs_throttled_periods_total", "Number of throttled periods", kind=COUNTER),
    Desc("container_cpu_cfs_throttled_seconds_total", "Total time throttled", kind=COUNTER),
    Desc("container_cpu_system_seconds_total", "Cumulative system cpu time", kind=COUNTER),
    Desc("container_cpu_usage_seconds_total", "Cumulative cpu time consumed", kind=COUNTER),
    Desc("container_cpu_user_seconds_total", "Cumulative user cpu time", kind=COUNTER),
    Desc("container_file_descriptors", "Number of open file descriptors"),
    Desc("container_fs_inodes_free", "Number of available inodes", DEVICE_LABELS),
    Desc("container_fs_inodes_total", "Number of inodes", DEVICE_LABELS),
    Desc(
        "container_fs_limit_bytes", "Bytes the container can use on its filesystem", DEVICE_LABELS
    ),
    Desc("container_fs_reads_bytes_total", "Cumulative bytes read", DEVICE_LABELS, COUNTER),
    Desc("container_fs_reads_total", "Cumulative reads completed", DEVICE_LABELS, COUNTER),
    Desc("container_fs_usage_bytes", "Bytes consumed on the filesystem", DEVICE_LABELS),
    Desc("container_fs_writes_bytes_total", "Cumulative bytes written", DEVICE_LABELS, COUNTER),
    Desc("container_fs_writes_total", "Cumulative writes completed", DEVICE_LABELS, COUNTER),
    Desc("container_last_seen", "Last time the container was seen, in seconds"),
    Desc("container_memory_cache", "Page cache memory in bytes"),
    Desc("container_memory_failcnt", "Times memory usage hit the limit", kind=COUNTER),
    Desc("container_memory_failures_total", "Memory allocation failures", FAILURE_LABELS, COUNTER),
    Desc("container_memory_kernel_usage", "Kernel memory usage in bytes"),
    Desc("container_memory_mapped_file", "Size of memory mapped files in bytes"),
    Desc("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes"),
    Desc("container_memory_rss", "Size of RSS in bytes"),
    Desc("container_memory_swap", "Container swap usage in bytes"),
    Desc("container_memory_usage_bytes", "Current memory usage in bytes"),
    Desc("container_memory_working_set_bytes", "Current working set in bytes"),
    Desc("container_network_receive_bytes_total", "Bytes received", NETWORK_LABELS, COUNTER),
    Desc("container_network_receive_errors_total", "Receive errors", NETWORK_LABELS, COUNTER),
    Desc(
        "container_network_receive_packets_dropped_total",
        "Packets dropped while receiving",
        NETWORK_LABELS,
        COUNTER,
    ),
    Desc("container_network_receive_packets_total", "Packets received", NETWORK_LABELS, COUNTER),
    Desc("container_network_transmit_bytes_total", "Bytes transmitted", NETWORK_LABELS, COUNTER),
    Desc("container_network_transmit_errors_total", "Transmit errors", NETWORK_LABELS, COUNTER),
    Desc(
        "container_network_transmit_packets_dropped_total",
        "Packets dropped while transmitting",
        NETWORK_LABELS,
        COUNTER,
    ),
    Desc(
        "container_network_transmit_packets_total", "Packets transmitted", NETWORK_LABELS, COUNTER
    ),
    Desc("container_oom_events_total", "Count of out of memory events", kind=COUNTER),
    Desc("container_processes", "Number of processes running inside the container"),
    Desc("container_sockets", "Number of open sockets"),
    Desc("container_spec_cpu_period", "CPU period of the container"),
    Desc("container_spec_cpu_shares", "CPU share of the container"),
    Desc("container_spec_memory_limit_bytes", "Memory limit for the container"),
    Desc("container_spec_memory_swap_limit_bytes", "Memory swap limit for the container"),
    Desc("container_start_time_seconds", "Start time of the container since unix epoch"),
    Desc("container_threads", "Number of threads running inside the container"),
    Desc("container_threads_max", "Maximum number of threads allowed inside the container"),
)

_BY_NAME = {d.name: d for d in DESCRIPTORS}


def descriptors() -> list[cri.MetricDescriptor]:
    return [
        cri.MetricDescriptor(name=d.name, help=d.help, label_keys=d.labels) for d in DESCRIPTORS
    ]


@dataclass(frozen=True)
class ProcessCounts:
    processes: int = 0
    threads: int = 0
    fds: int = 0
    sockets: int = 0


def process_counts(pids: Iterable[int]) -> ProcessCounts:
    """Processes, threads, open descriptors and sockets of ``pids`` (from /proc)."""
    processes = threads = fds = sockets = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("Threads:"):
                        threads += int(line.split()[1])
            entries = os.listdir(f"/proc/{pid}/fd")
        except (OSError, ValueError):
            continue
        processes += 1
        fds += len(entries)
        for entry in entries:
            try:
                if os.readlink(f"/proc/{pid}/fd/{entry}").startswith("socket:"):
                    sockets += 1
            except OSError:
                pass
    return ProcessCounts(processes, threads, fds, sockets)


def network_counters(pid: int, interface: str = "eth0") -> dict[str, int]:
    """/proc/<pid>/net/dev's counters of one interface in the process's network namespace."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name.strip() != interface:
            continue
        v = [int(x) for x in rest.split()]
        return {
            "receive_bytes": v[0],
            "receive_packets": v[1],
            "receive_errors": v[2],
            "receive_packets_dropped": v[3],
            "transmit_bytes": v[8],
            "transmit_packets": v[9],
            "transmit_errors": v[10],
            "transmit_packets_dropped": v[11],
        }
    return {}


class Builder:
    """Metrics of one container (or of a pod, for its network), each with its labels."""

    def __init__(self, labels: Mapping[str, str], timestamp: int) -> None:
        self.labels = labels
        self.timestamp = timestamp
        self.out: list[cri.Metric] = []

    def add(self, name: str, value: int | float, **extra: str) -> None:
        desc = _BY_NAME[name]
        values = {**self.labels, **extra}
        self.out.append(
            cri.Metric(
                name=name,
                timestamp=self.timestamp,
                metric_type=desc.kind,  # type: ignore[arg-type]
                label_values=[values.get(k, "") for k in desc.labels],
                value=cri.UInt64Value(value=max(int(value), 0)),
            )
        )


def container_metrics(
    builder: Builder,
    stats: metrics_pb2.Metrics | None,
    resources: cri.LinuxContainerResources,
    counts: ProcessCounts,
    started_at_ns: int,
    fs_used: tuple[int, int],
    fs_device: str,
    fs_stat: os.statvfs_result | None,
    oom_kills: int,
) -> None:
    add = builder.add
    s = stats or metrics_pb2.Metrics()
    cpu, mem = s.cpu, s.memory
    add("container_cpu_usage_seconds_total", cpu.usage.total / 1e9)
    add("container_cpu_user_seconds_total", cpu.usage.user / 1e9)
    add("container_cpu_system_seconds_total", cpu.usage.kernel / 1e9)
    add("container_cpu_cfs_periods_total", cpu.throttling.periods)
    add("container_cpu_cfs_throttled_periods_total", cpu.throttling.throttled_periods)
    add("container_cpu_cfs_throttled_seconds_total", cpu.throttling.throttled_time / 1e9)
    usage = mem.usage.usage
    add("container_memory_usage_bytes", usage)
    add("container_memory_working_set_bytes", usage - min(usage, mem.total_inactive_file))
    add("container_memory_cache", mem.total_cache or mem.cache)
    add("container_memory_rss", mem.total_rss or mem.rss)
    add("container_memory_mapped_file", mem.total_mapped_file or mem.mapped_file)
    add("container_memory_max_usage_bytes", mem.usage.max)
    add("container_memory_failcnt", mem.usage.failcnt)
    add("container_memory_kernel_usage", mem.kernel.usage)
    add("container_memory_swap", max(mem.swap.usage - usage, 0))
    for kind, value in (
        ("pgfault", mem.total_pg_fault or mem.pg_fault),
        ("pgmajfault", mem.total_pg_maj_fault or mem.pg_maj_fault),
    ):
        add("container_memory_failures_total", value, failure_type=kind, scope="container")
    add("container_oom_events_total", oom_kills)
    reads = writes = read_ops = write_ops = 0
    for entry in s.blkio.io_service_bytes_recursive:
        if entry.op.lower() == "read":
            reads += entry.value
        elif entry.op.lower() == "write":
            writes += entry.value
        add("container_blkio_device_usage_total", entry.value, device=entry.device or "")
    for entry in s.blkio.io_serviced_recursive:
        if entry.op.lower() == "read":
            read_ops += entry.value
        elif entry.op.lower() == "write":
            write_ops += entry.value
    device = {"device": fs_device}
    add("container_fs_reads_bytes_total", reads, **device)
    add("container_fs_writes_bytes_total", writes, **device)
    add("container_fs_reads_total", read_ops, **device)
    add("container_fs_writes_total", write_ops, **device)
    add("container_fs_usage_bytes", fs_used[0], **device)
    if fs_stat is not None:
        add("container_fs_limit_bytes", fs_stat.f_blocks * fs_stat.f_frsize, **device)
        add("container_fs_inodes_total", fs_stat.f_files, **device)
        add("container_fs_inodes_free", fs_stat.f_ffree, **device)
    add("container_processes", counts.processes)
    add("container_threads", counts.threads)
    add("container_file_descriptors", counts.fds)
    add("container_sockets", counts.sockets)
    add("container_threads_max", s.pids.limit)
    add("container_spec_cpu_period", resources.cpu_period)
    add("container_spec_cpu_shares", resources.cpu_shares)
    add("container_spec_memory_limit_bytes", resources.memory_limit_in_bytes)
    add("container_spec_memory_swap_limit_bytes", resources.memory_swap_limit_in_bytes)
    add("container_start_time_seconds", started_at_ns / 1e9)
    add("container_last_seen", builder.timestamp / 1e9)


def pod_network_metrics(builder: Builder, pause_pid: int) -> None:
    for key, value in network_counters(pause_pid).items():
        builder.add(f"container_network_{key}_total", value, interface="eth0")

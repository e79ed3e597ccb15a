"""Turn a runtime's ``events --stats`` JSON into ``io.containerd.cgroups.v1.Metrics``.

That message (packed in an Any with its bare name as type URL) is what containerd's
runc shim returns from Stats on cgroup v1 hosts and what ``ctr tasks metrics``
decodes. Field sources: runc's stats JSON (``cpu``, ``memory``, ``pids``,
``blkio``, ``hugetlb``, ``network_interfaces``); the detailed memory counters come
from ``memory.raw`` (the cgroup's memory.stat).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import any_pb2

from pycontainerd.api.cgroups.v1 import metrics_pb2

METRICS_TYPE_URL = "io.containerd.cgroups.v1.Metrics"

#: MemoryStat field -> key in memory.stat where the names differ.
_MEMORY_RAW_KEYS = {
    "pg_pg_in": "pgpgin",
    "pg_pg_out": "pgpgout",
    "pg_fault": "pgfault",
    "pg_maj_fault": "pgmajfault",
    "hierarchical_swap_limit": "hierarchical_memsw_limit",
    "total_pg_pg_in": "total_pgpgin",
    "total_pg_pg_out": "total_pgpgout",
    "total_pg_fault": "total_pgfault",
    "total_pg_maj_fault": "total_pgmajfault",
}

#: BlkIOStat field -> runc's JSON key.
_BLKIO_KEYS = {
    "io_service_bytes_recursive": "ioServiceBytesRecursive",
    "io_serviced_recursive": "ioServicedRecursive",
    "io_queued_recursive": "ioQueueRecursive",
    "io_service_time_recursive": "ioServiceTimeRecursive",
    "io_wait_time_recursive": "ioWaitTimeRecursive",
    "io_merged_recursive": "ioMergedRecursive",
    "io_time_recursive": "ioTimeRecursive",
    "sectors_recursive": "sectorsRecursive",
}

_MEMORY_ENTRIES = {"usage": "usage", "swap": "swap", "kernel": "kernel", "kernel_tcp": "kernelTCP"}

_NETWORK_FIELDS = (
    "rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
    "tx_bytes", "tx_packets", "tx_errors", "tx_dropped",
)  # fmt: skip


def _u64(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def metrics_from_stats(stats: dict[str, Any]) -> metrics_pb2.Metrics:
    """Build cgroup v1 Metrics from runc's stats object (the event's ``data``).

    CPU, memory (with its entries), pids and blkio are always present, even
    when every counter is zero: containerd's cgroup reader fills each
    subsystem's message, and clients read them without a nil check (nerdctl
    stats reads Blkio and Pids of a container that did no I/O).
    """
    metrics = metrics_pb2.Metrics()
    for message in (
        metrics.cpu.usage,
        metrics.cpu.throttling,
        metrics.memory.usage,
        metrics.memory.swap,
        metrics.memory.kernel,
        metrics.memory.kernel_tcp,
        metrics.pids,
        metrics.blkio,
    ):
        message.SetInParent()
    _fill_cpu(metrics.cpu, _object(stats.get("cpu")))
    _fill_memory(metrics.memory, _object(stats.get("memory")))
    pids = _object(stats.get("pids"))
    metrics.pids.current = _u64(pids.get("current"))
    metrics.pids.limit = _u64(pids.get("limit"))
    blkio = _object(stats.get("blkio"))
    for field_name, key in _BLKIO_KEYS.items():
        target = getattr(metrics.blkio, field_name)
        for entry in blkio.get(key) or []:
            target.add(
                op=str(entry.get("op", "")),
                major=_u64(entry.get("major")),
                minor=_u64(entry.get("minor")),
                value=_u64(entry.get("value")),
            )
    for pagesize, entry in sorted(_object(stats.get("hugetlb")).items()):
        entry = _object(entry)
        metrics.hugetlb.add(
            pagesize=pagesize,
            usage=_u64(entry.get("usage")),
            max=_u64(entry.get("max")),
            failcnt=_u64(entry.get("failcnt")),
        )
    for interface in stats.get("network_interfaces") or []:
        interface = _object(interface)
        metrics.network.add(
            name=str(interface.get("name", "")),
            **{name: _u64(interface.get(name)) for name in _NETWORK_FIELDS},
        )
    return metrics


def _fill_cpu(cpu: metrics_pb2.CPUStat, source: dict[str, Any]) -> None:
    usage = _object(source.get("usage"))
    cpu.usage.total = _u64(usage.get("total"))
    cpu.usage.kernel = _u64(usage.get("kernel"))
    cpu.usage.user = _u64(usage.get("user"))
    cpu.usage.per_cpu.extend(_u64(v) for v in usage.get("percpu") or [])
    throttling = _object(source.get("throttling"))
    cpu.throttling.periods = _u64(throttling.get("periods"))
    cpu.throttling.throttled_periods = _u64(throttling.get("throttledPeriods"))
    cpu.throttling.throttled_time = _u64(throttling.get("throttledTime"))


def _fill_memory(memory: metrics_pb2.MemoryStat, source: dict[str, Any]) -> None:
    raw = _object(source.get("raw"))
    for field in memory.DESCRIPTOR.fields:
        if field.message_type is None:
            key = _MEMORY_RAW_KEYS.get(field.name, field.name)
            setattr(memory, field.name, _u64(raw.get(key)))
    memory.cache = _u64(source.get("cache")) or memory.cache
    for field_name, key in _MEMORY_ENTRIES.items():
        entry = _object(source.get(key))
        target = getattr(memory, field_name)
        target.limit = _u64(entry.get("limit"))
        target.usage = _u64(entry.get("usage"))
        target.max = _u64(entry.get("max"))
        target.failcnt = _u64(entry.get("failcnt"))


def pack_metrics(stats: dict[str, Any]) -> any_pb2.Any:
    """The Stats response payload: Metrics in an Any named the way containerd names it."""
    return any_pb2.Any(
        type_url=METRICS_TYPE_URL, value=metrics_from_stats(stats).SerializeToString()
    )

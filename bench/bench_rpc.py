"""Server CPU per gRPC call: pycontainerd beside containerd 2.x, one client for both.

The same Python client (grpcio, in this process) loops on each daemon's socket
and the daemon's own CPU (/proc) is divided by the calls, so the figure is what
one call costs the daemon: its gRPC transport plus the method. Version is the
transport alone (the method does nothing); the List calls add a namespace check
and a metadata read. Calls alternate between the daemons in rounds.

Run alone with ``python -m bench rpc``; BENCH_RPC_CALLS sets the calls per round (2000).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import grpc

from bench.common import (
    Row,
    containerd_daemon,
    containerd_pid,
    cpu_seconds,
    median_of,
    print_table,
    pycontainerd_daemon,
)

CALLS = int(os.environ.get("BENCH_RPC_CALLS", "2000"))
ROUNDS = 3
NAMESPACE = (("containerd-namespace", "bench"),)
METHODS = (
    ("Version", "/containerd.services.version.v1.Version/Version"),
    ("Namespaces.List", "/containerd.services.namespaces.v1.Namespaces/List"),
    ("Containers.List of 10", "/containerd.services.containers.v1.Containers/List"),
)


def _make_containers(address: Path) -> None:
    """Ten container records (no image needed: ctr's `containers create` wants one, the API does not)."""
    from pycontainerd.api.services.containers.v1 import containers_pb2 as api

    with grpc.insecure_channel(f"unix://{address}") as channel:
        create = channel.unary_unary(
            "/containerd.services.containers.v1.Containers/Create",
            request_serializer=api.CreateContainerRequest.SerializeToString,
        )
        for i in range(10):
            container = api.Container(
                id=f"bench-{i}", runtime=api.Container.Runtime(name="io.containerd.runc.v2")
            )
            container.spec.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
            container.spec.value = b"{}"
            create(api.CreateContainerRequest(container=container), metadata=NAMESPACE)


def _cpu_per_call(address: Path, pid: int, method: str) -> float:
    """Microseconds of the daemon's CPU per call of ``method`` (empty request)."""
    with grpc.insecure_channel(f"unix://{address}") as channel:
        call = channel.unary_unary(method)
        for _ in range(100):
            call(b"", metadata=NAMESPACE)
        before = cpu_seconds(pid)
        for _ in range(CALLS):
            call(b"", metadata=NAMESPACE)
        return (cpu_seconds(pid) - before) / CALLS * 1e6


def run() -> None:
    with contextlib.ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-rpc-")))
        ours = stack.enter_context(pycontainerd_daemon(base=base))
        assert ours.proc is not None
        address2 = stack.enter_context(containerd_daemon(2, base=base))
        daemons: dict[str, tuple[Path, int]] = {"ours": (ours.address, ours.proc.pid)}
        if address2 is not None:
            daemons["containerd 2.x"] = (
                address2,
                containerd_pid(address2),
            )
        for address, _ in daemons.values():
            _make_containers(address)
        time.sleep(1)
        samples: dict[tuple[str, str], list[float]] = {}
        for _ in range(ROUNDS):
            for label, method in METHODS:
                for name, (address, pid) in daemons.items():
                    samples.setdefault((name, label), []).append(
                        _cpu_per_call(address, pid, method)
                    )
        rows = [
            Row(
                f"{label}: daemon CPU per call",
                median_of(samples[("ours", label)]),
                median_of(samples[("containerd 2.x", label)]) if address2 else None,
                "us",
                "containerd 2.x",
            )
            for label, _ in METHODS
        ]
        print_table(f"gRPC calls, median of {ROUNDS} rounds of {CALLS}", rows)

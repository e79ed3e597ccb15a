"""1100 concurrent content Write streams under the usual soft limit of 1024 open files.

Each stream holds an ingest file open; they used to fail with ``UNKNOWN: [Errno 24]
Too many open files``. The daemon raises its soft RLIMIT_NOFILE to the hard limit
at start (as Go programs do), and running out anyway is RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import hashlib
import resource
from collections.abc import Iterator

import grpc
import pytest

from pycontainerd.api.services.content.v1 import content_pb2, content_pb2_grpc
from tests.support.daemon import DaemonProcess
from tests.support.procs import alive

pytestmark = pytest.mark.e2e
WRITERS = 1100
USUAL_SOFT_LIMIT = 1024


@pytest.fixture
def daemon_with_low_soft_limit() -> Iterator[DaemonProcess]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < WRITERS * 2:
        pytest.skip(f"the hard open-files limit ({hard}) is below what the test needs")
    daemon = DaemonProcess()
    resource.setrlimit(resource.RLIMIT_NOFILE, (USUAL_SOFT_LIMIT, hard))  # the daemon inherits it
    try:
        daemon.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield daemon
    finally:
        daemon.cleanup()


def _limits_of(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits", encoding="ascii") as f:
        line = next(row for row in f if row.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


async def _write_all(address: str) -> list[str]:
    """Open every stream and write to it, then commit them all: each holds a file meanwhile."""
    metadata = (("containerd-namespace", "default"),)
    everyone_wrote = asyncio.Barrier(WRITERS)
    async with grpc.aio.insecure_channel(f"unix://{address}") as channel:
        stub = content_pb2_grpc.ContentStub(channel)

        async def one(index: int) -> str:
            data = f"blob {index}\n".encode()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            call = stub.Write(metadata=metadata, timeout=300)
            await call.write(
                content_pb2.WriteContentRequest(
                    action=content_pb2.WRITE, ref=f"many-{index}", data=data, total=len(data)
                )
            )
            written = await call.read()
            assert written.offset == len(data)
            await everyone_wrote.wait()
            await call.write(
                content_pb2.WriteContentRequest(
                    action=content_pb2.COMMIT,
                    ref=f"many-{index}",
                    offset=len(data),
                    total=len(data),
                    expected=digest,
                )
            )
            committed = await call.read()
            await call.done_writing()
            assert committed.digest == digest
            return digest

        return await asyncio.gather(*(one(i) for i in range(WRITERS)))


def test_1100_concurrent_writes_succeed(daemon_with_low_soft_limit: DaemonProcess) -> None:
    daemon = daemon_with_low_soft_limit
    assert daemon.proc is not None and alive(daemon.proc.pid)
    soft, hard = _limits_of(daemon.proc.pid)
    assert soft == hard, "the daemon raised its soft limit to the hard one"
    digests = asyncio.run(_write_all(str(daemon.address)))
    assert len(set(digests)) == WRITERS
    blobs = daemon.root / "io.containerd.content.v1.content" / "blobs" / "sha256"
    assert all((blobs / d.removeprefix("sha256:")).exists() for d in digests)


async def _codes_of_writes(address: str, writers: int) -> list[grpc.StatusCode]:
    """Open `writers` streams that each write and hold their file; the status of each."""
    metadata = (("containerd-namespace", "default"),)
    settled = 0
    all_settled = asyncio.Event()
    async with grpc.aio.insecure_channel(f"unix://{address}") as channel:
        stub = content_pb2_grpc.ContentStub(channel)

        async def one(index: int) -> grpc.StatusCode:
            nonlocal settled
            call = stub.Write(metadata=metadata, timeout=300)
            try:
                await call.write(
                    content_pb2.WriteContentRequest(
                        action=content_pb2.WRITE, ref=f"held-{index}", data=b"x"
                    )
                )
                await call.read()
                code = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                code = exc.code()
            settled += 1
            if settled == writers:
                all_settled.set()
            await all_settled.wait()
            call.cancel()
            return code

        return await asyncio.gather(*(one(i) for i in range(writers)))


def test_running_out_of_descriptors_is_resource_exhausted(daemon) -> None:
    assert daemon.proc is not None
    resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE, (256, 256))
    codes = asyncio.run(_codes_of_writes(str(daemon.address), 400))
    assert grpc.StatusCode.OK in codes
    failed = {code for code in codes if code != grpc.StatusCode.OK}
    assert failed == {grpc.StatusCode.RESOURCE_EXHAUSTED}, failed

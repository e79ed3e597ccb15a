"""What the streaming server runs: exec'd processes, attach to a container, a pod's ports.

These reach the container through the CRI manager's task (runtime/task.py's
interface); stdio goes through FIFOs as the shim expects them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import json
import os
import shutil
import signal
import socket

from google.protobuf import any_pb2

from pycontainerd import errdefs
from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri import logs
from pycontainerd.cri.manager import PROCESS_TYPE_URL, CRIManager
from pycontainerd.cri.state import NAMESPACE, Container, new_id
from pycontainerd.metadata.placement import call
from pycontainerd.runtime.task import Exit, Process, Task
from pycontainerd.stdio_paths import StdioPaths

from .remotecommand import Channel, Streams, pump_resize

CHUNK = 32 * 1024
CLONE_NEWNET = 0x40000000


def running(m: CRIManager, container_id: str) -> tuple[Container, Task]:
    container = m.index.container(container_id)
    task = m._task(container.id)
    if container.state != cri.CONTAINER_RUNNING or task is None:
        raise errdefs.FailedPrecondition(f"container {container.id} is not running")
    return container, task


async def _read_pipe(path: str) -> asyncio.StreamReader:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    reader = asyncio.StreamReader(limit=CHUNK * 4)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    return reader


async def _write_pipe(path: str) -> asyncio.WriteTransport:
    """The write end of a FIFO the shim reads (it opens it when the process starts)."""
    for _ in range(100):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            await asyncio.sleep(0.02)
    else:
        raise errdefs.Internal(f"nobody reads {path}")
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(fd, "wb", buffering=0))
    return transport


async def _copy_out(source: asyncio.StreamReader, target: Channel | None) -> None:
    while chunk := await source.read(CHUNK):
        if target is not None:
            await target.write(chunk)
    if target is not None:
        await target.close()


async def _copy_in(source: Channel, target: asyncio.WriteTransport) -> None:
    while chunk := await source.read():
        target.write(chunk)
    target.close()


async def exec_process(m: CRIManager, request: cri.ExecRequest, streams: Streams) -> int:
    """Run the command in the container wired to the streams; its exit code."""
    container, task = running(m, request.container_id)
    record = await call(m.metadata.containers.get, NAMESPACE, container.id)
    assert record.spec is not None
    process = dict(json.loads(record.spec.value)["process"])
    process["args"] = list(request.cmd)
    process["terminal"] = bool(request.tty)
    exec_id = new_id()[:32]
    directory = os.path.join(m.stdio_dir(container.id), "stream-" + exec_id)
    await asyncio.to_thread(os.makedirs, directory, 0o700, True)
    names = ["stdout"] + ([] if request.tty else ["stderr"])
    paths = {n: os.path.join(directory, n) for n in names + ["stdin"]}
    for path in paths.values():
        logs.make_fifo(path)
    readers = {n: await _read_pipe(paths[n]) for n in names}
    # Writers of our own until the process ended, so no reader sees an early end.
    holders = [os.open(paths[n], os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC) for n in names]
    # And a writer on stdin until the client's stdin ends: the shim must not read an
    # end of file before the first byte came.
    stdin_holder = os.open(paths["stdin"], os.O_RDWR | os.O_CLOEXEC) if request.stdin else -1
    pumps: list[asyncio.Task[None]] = []
    proc: Process | None = None
    try:
        proc = await task.exec(
            exec_id,
            StdioPaths(
                stdin=paths["stdin"] if request.stdin else "",
                stdout=paths["stdout"],
                stderr=paths.get("stderr", ""),
                terminal=bool(request.tty),
            ),
            any_pb2.Any(type_url=PROCESS_TYPE_URL, value=json.dumps(process).encode()),
        )
        await proc.start()
        outs = [asyncio.create_task(_copy_out(readers[n], getattr(streams, n))) for n in names]
        pumps += outs
        if request.stdin and streams.stdin is not None:
            held, stdin_holder = stdin_holder, -1
            pumps.append(asyncio.create_task(_stdin(streams.stdin, paths["stdin"], held, proc)))
        if streams.resize is not None:
            pumps.append(asyncio.create_task(pump_resize(streams.resize, proc.resize)))
        exited = await _wait_or_hang_up(proc, streams)
        for fd in holders:
            os.close(fd)
        holders = []
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*outs, return_exceptions=True), 5)
        return exited.exit_status
    finally:
        for fd in holders:
            os.close(fd)
        if stdin_holder >= 0:
            os.close(stdin_holder)
        for pump in pumps:
            pump.cancel()
        if proc is not None:
            with contextlib.suppress(errdefs.ContainerdError):
                await proc.delete()
        await asyncio.to_thread(shutil.rmtree, directory, True)


async def _wait_or_hang_up(proc: Process, streams: Streams) -> Exit:
    """The process's exit; a client that went away first takes it down (SIGKILL)."""
    waiting = asyncio.create_task(proc.wait())
    closed = asyncio.create_task(streams.closed.wait())
    try:
        await asyncio.wait({waiting, closed}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            with contextlib.suppress(errdefs.ContainerdError):
                await proc.kill(signal.SIGKILL)
        return await waiting
    finally:
        closed.cancel()
        waiting.cancel()


async def _stdin(source: Channel, path: str, holder: int, proc: Process) -> None:
    try:
        await _copy_in(source, await _write_pipe(path))
    finally:
        os.close(holder)
    with contextlib.suppress(errdefs.ContainerdError):
        await proc.close_io()


async def attach(m: CRIManager, request: cri.AttachRequest, streams: Streams) -> None:
    """Until the container's output ends or the client goes away."""
    container, task = running(m, request.container_id)
    forwarder = m._forwarders.get(container.id)
    if forwarder is None:
        raise errdefs.FailedPrecondition(f"container {container.id} has no output to attach to")
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue()

    def tap(stream: bytes, chunk: bytes) -> None:
        loop.call_soon_threadsafe(chunks.put_nowait, (stream, chunk))

    forwarder.taps.append(tap)
    pumps: list[asyncio.Task[None]] = []
    try:
        if streams.stdin is not None and container.config.stdin:
            pumps.append(asyncio.create_task(_attach_stdin(m, streams.stdin, container, task)))
        if streams.resize is not None:
            pumps.append(asyncio.create_task(pump_resize(streams.resize, task.resize)))
        open_streams = len(forwarder._threads) - len(forwarder.ended)
        closed = asyncio.create_task(streams.closed.wait())
        while open_streams > 0 and not closed.done():
            getter = asyncio.create_task(chunks.get())
            await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                break
            name, chunk = getter.result()
            if not chunk:
                open_streams -= 1
                continue
            target = streams.stdout if name == b"stdout" else streams.stderr
            if target is not None:
                await target.write(chunk)
        closed.cancel()
        for target in (streams.stdout, streams.stderr):
            if target is not None:
                await target.close()
    finally:
        forwarder.taps.remove(tap)
        for pump in pumps:
            pump.cancel()


async def _attach_stdin(m: CRIManager, source: Channel, container: Container, task: Task) -> None:
    path = os.path.join(container.stdio_dir, "stdin")
    target = await _write_pipe(path)
    while chunk := await source.read():
        target.write(chunk)
    target.close()
    if container.config.stdin_once:
        m.close_stdin(container.id)
        with contextlib.suppress(errdefs.ContainerdError):
            await task.close_io()


def _socket_in(netns: str) -> socket.socket:
    """A TCP socket made inside the network namespace ``netns`` (this thread goes back)."""
    if not netns:
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns}")
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                # A thread left in the pod's namespace must not serve anyone else.
                os._exit(70)
    finally:
        os.close(own)
        os.close(target)


async def dial(m: CRIManager, sandbox_id: str, port: int) -> socket.socket:
    """A connection to ``port`` on the pod's loopback (inside its network namespace)."""
    sandbox = m.index.sandbox(sandbox_id)
    if not sandbox.ready:
        raise errdefs.FailedPrecondition(f"sandbox {sandbox.id} is not ready")
    sock = await asyncio.to_thread(_socket_in, sandbox.netns)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock

"""Interoperability with Go's containerd/ttrpc, using real binaries from Debian:

* our client -> the real ``containerd-shim-runc-v2`` (Go ttrpc server);
* the real ``ctr shim ... state`` (Go ttrpc client) -> our server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.api.runtime.v2.task import shim_pb2
from pycontainerd.ttrpc import ServiceStub, TtrpcClient, TtrpcServer, register_service
from pycontainerd.ttrpc.address import socket_path
from tests.support.procs import alive

TASK_SERVICE = shim_pb2.DESCRIPTOR.services_by_name["Task"]
GO_SHIM = shutil.which("containerd-shim-runc-v2")
GO_CTR = shutil.which("ctr")
TRUE = shutil.which("true")


def _processes_in(directory: Path) -> list[int]:
    """Pids whose working directory is ``directory`` (the shim runs in its bundle)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(entry / "cwd") == str(directory):
                pids.append(int(entry.name))
    return pids


def _stop_shims(bundle: Path) -> None:
    for pid in _processes_in(bundle):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _remove_shim_socket(address: str) -> None:
    """Remove the shim's socket file if it is still there.

    Its directory is shared with other shims (containerd's state dir), so it stays.
    """
    with contextlib.suppress(FileNotFoundError):
        Path(socket_path(address)).unlink()


def _make_bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text("{}")
    os.mkfifo(bundle / "log")  # the daemonized shim writes its log here
    return bundle


async def _start_go_shim(bundle: Path, namespace: str, task_id: str) -> str:
    """Run the shim's ``start`` mode the way containerd does; returns its ttrpc address."""
    start = await asyncio.create_subprocess_exec(
        GO_SHIM,
        "-namespace", namespace,
        "-address", str(bundle.parent / "containerd.sock"),
        "-publish-binary", TRUE,
        "-id", task_id,
        "start",
        cwd=bundle,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TTRPC_ADDRESS": str(bundle.parent / "events.sock")},
    )  # fmt: skip
    out, err = await asyncio.wait_for(start.communicate(), 20)
    assert start.returncode == 0, err.decode()
    return out.decode().strip()


def test_our_client_drives_the_real_go_shim(run, tmp_path):
    namespace, task_id = f"ttrpc-test-{uuid.uuid4().hex[:8]}", "interop"

    async def scenario():
        bundle = _make_bundle(tmp_path)
        # Hold the log fifo's read end open, as containerd does, so the shim can open it.
        log_fd = os.open(bundle / "log", os.O_RDONLY | os.O_NONBLOCK)
        address = ""
        try:
            address = await _start_go_shim(bundle, namespace, task_id)
            assert address.startswith("unix://")

            async with await TtrpcClient.connect(address, timeout=5) as client:
                task = ServiceStub(client, TASK_SERVICE)
                connected = await task.Connect(shim_pb2.ConnectRequest(id=task_id), timeout=5)
                assert connected.shim_pid in _processes_in(bundle)
                assert connected.task_pid == 0

                # Go's errdefs.ErrNotFound travels as code NOT_FOUND.
                with pytest.raises(errdefs.NotFound, match="container not created"):
                    await task.State(shim_pb2.StateRequest(id=task_id))
                with pytest.raises(errdefs.NotImplemented_, match="method Nope"):
                    await client.call(
                        TASK_SERVICE.full_name,
                        "Nope",
                        shim_pb2.StateRequest(),
                        shim_pb2.StateResponse,
                    )
                # Concurrent calls on the one connection.
                replies = await asyncio.gather(
                    *(task.Connect(shim_pb2.ConnectRequest(id=task_id)) for _ in range(20))
                )
                assert {r.shim_pid for r in replies} == {connected.shim_pid}

                # The shim may exit before its answer is flushed (containerd ignores that).
                with contextlib.suppress(errdefs.Unavailable):
                    await task.Shutdown(shim_pb2.ShutdownRequest(id=task_id), timeout=5)
            for _ in range(500):
                if not alive(connected.shim_pid):
                    break
                await asyncio.sleep(0.01)
            assert not alive(connected.shim_pid)
        finally:
            _stop_shims(bundle)
            if address:
                _remove_shim_socket(address)
            os.close(log_fd)

    run(scenario())


class _FixedTask:
    """A Task service that knows one task; enough for ``ctr shim state``."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id

    async def State(self, request, ctx):  # noqa: N802 - RPC name
        if request.id != self.task_id:
            raise errdefs.NotFound(f"task {request.id} not found")
        return shim_pb2.StateResponse(id=request.id, pid=4242, bundle="/b", exit_status=7)


def test_real_go_client_calls_our_server(run, tmp_path):
    namespace = f"ttrpc-test-{uuid.uuid4().hex[:8]}"

    async def ctr_shim_state(task_id: str) -> tuple[int, str, str]:
        # No shim socket exists for this (address, namespace, id), so ctr falls back to
        # the legacy abstract socket "\0/containerd-shim/<ns>/<id>/shim.sock"; Go puts a
        # trailing NUL in the abstract name, so we bind the same bytes.
        ctr = await asyncio.create_subprocess_exec(
            GO_CTR,
            "--address", str(tmp_path / "absent.sock"),
            "--namespace", namespace,
            "shim", "--id", task_id, "state",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(ctr.communicate(), 20)
        return ctr.returncode, out.decode(), err.decode()

    async def scenario():
        server = TtrpcServer()
        register_service(server, TASK_SERVICE, _FixedTask("known"))
        for task_id in ("known", "unknown"):
            await server.serve_unix(f"@/containerd-shim/{namespace}/{task_id}/shim.sock\0")
        try:
            code, out, err = await ctr_shim_state("known")
            assert code == 0, err
            assert '"pid": 4242' in out and '"exit_status": 7' in out
            code, out, err = await ctr_shim_state("unknown")
            assert code != 0
            assert "rpc error: code = NotFound desc = task unknown not found" in err
        finally:
            await server.close()

    run(scenario())

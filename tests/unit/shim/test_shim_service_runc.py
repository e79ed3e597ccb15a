"""The Task service with the real runc: busybox bundles in a temp dir, no daemon.

Calls the service's methods directly (the ttrpc layer has its own tests) and
records events instead of forwarding them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message

from pycontainerd import errdefs
from pycontainerd.api.runtime.v2.runc.options import oci_pb2
from pycontainerd.api.runtime.v2.task import shim_pb2
from pycontainerd.shim_v2.events import EventPublisher
from pycontainerd.shim_v2.options import RUNC_OPTIONS_TYPE
from pycontainerd.shim_v2.process import Status
from pycontainerd.shim_v2.reaper import Reaper, set_child_subreaper
from pycontainerd.shim_v2.service import TaskService

RUNC = shutil.which("runc")
BUSYBOX = shutil.which("busybox")


class RecordingPublisher(EventPublisher):
    def __init__(self) -> None:
        super().__init__("", "test")
        self.events: list[Message] = []

    def publish(self, event: Message) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [e.DESCRIPTOR.name for e in self.events]


def make_bundle(base: Path, name: str, args: list[str]) -> Path:
    bundle = base / name
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    assert BUSYBOX is not None and RUNC is not None
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in ("sh", "sleep", "echo", "cat", "tty"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    subprocess.run([RUNC, "spec", "--bundle", str(bundle)], check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"].update(terminal=False, args=args)
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def run_service(tmp_path: Path, body: Callable[[TaskService], Awaitable[None]]) -> list[str]:
    """Run `body` against a fresh service; returns the event names it published."""
    publisher = RecordingPublisher()
    shutdowns: list[bool] = []

    async def main() -> None:
        # Container processes outlive `runc create`; as in the shim, they must become ours.
        set_child_subreaper()
        reaper = Reaper()
        reaper.install()
        service = TaskService("test", publisher, reaper, on_shutdown=lambda: shutdowns.append(True))
        try:
            await asyncio.wait_for(body(service), 60)
        finally:
            for container_id, container in list(service.containers.items()):
                await container.runtime.delete(container_id, force=True)
                container.unmount_rootfs()
            set_child_subreaper(False)
            await asyncio.sleep(0.1)
            reaper.reap()
            reaper.uninstall()

    asyncio.run(main())
    return publisher.names() + (["shutdown"] if shutdowns else [])


def _options(tmp_path: Path) -> any_pb2.Any:
    options = oci_pb2.Options(root=str(tmp_path / "runc-root"))
    return any_pb2.Any(type_url=RUNC_OPTIONS_TYPE, value=options.SerializeToString())


def _id(tmp_path: Path, suffix: str) -> str:
    return f"pyshim-{os.getpid()}-{tmp_path.name[-12:].strip('_')}-{suffix}"


def test_init_exit_status_output_and_events(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "b1", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    output = tmp_path / "output.log"
    cid = _id(tmp_path, "a")

    async def body(service: TaskService) -> None:
        created = await service.Create(
            shim_pb2.CreateTaskRequest(
                id=cid, bundle=str(bundle), stdout=f"file://{output}",
                stderr=f"file://{output}", options=_options(tmp_path),
            ),
            None,
        )  # fmt: skip
        assert created.pid > 0
        state = await service.State(shim_pb2.StateRequest(id=cid), None)
        assert (state.status, state.pid) == (Status.CREATED, created.pid)
        started = await service.Start(shim_pb2.StartRequest(id=cid), None)
        assert started.pid == created.pid
        waited = await service.Wait(shim_pb2.WaitRequest(id=cid), None)
        assert waited.exit_status == 3 and waited.exited_at.seconds > 0
        state = await service.State(shim_pb2.StateRequest(id=cid), None)
        assert (state.status, state.exit_status) == (Status.STOPPED, 3)
        with pytest.raises(errdefs.NotFound, match="process already finished"):
            await service.Kill(shim_pb2.KillRequest(id=cid, signal=9), None)
        deleted = await service.Delete(shim_pb2.DeleteRequest(id=cid), None)
        assert (deleted.pid, deleted.exit_status) == (created.pid, 3)
        with pytest.raises(errdefs.NotFound):
            await service.State(shim_pb2.StateRequest(id=cid), None)
        await service.Shutdown(shim_pb2.ShutdownRequest(id=cid), None)

    events = run_service(tmp_path, body)
    assert events == ["TaskCreate", "TaskStart", "TaskExit", "TaskDelete", "shutdown"]
    assert sorted(output.read_text().split()) == ["err", "out"]


def test_execs_kill_and_terminal(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "b2", ["sleep", "100"])
    cid = _id(tmp_path, "b")
    tty_output = tmp_path / "tty.log"
    process = {"args": ["sh", "-c", "exit 4"], "cwd": "/", "env": ["PATH=/bin"],
               "user": {"uid": 0, "gid": 0}}  # fmt: skip

    def exec_request(exec_id: str, spec: dict, **kwargs) -> shim_pb2.ExecProcessRequest:  # type: ignore[no-untyped-def]
        value = any_pb2.Any(type_url="types.containerd.io/opencontainers/runtime-spec/1/Process",
                            value=json.dumps(spec).encode())  # fmt: skip
        return shim_pb2.ExecProcessRequest(id=cid, exec_id=exec_id, spec=value, **kwargs)

    async def body(service: TaskService) -> None:
        await service.Create(
            shim_pb2.CreateTaskRequest(id=cid, bundle=str(bundle), options=_options(tmp_path)),
            None,
        )
        init_pid = (await service.Start(shim_pb2.StartRequest(id=cid), None)).pid
        await service.Exec(exec_request("e1", process), None)
        with pytest.raises(errdefs.AlreadyExists):
            await service.Exec(exec_request("e1", process), None)
        await service.Start(shim_pb2.StartRequest(id=cid, exec_id="e1"), None)
        waited = await service.Wait(shim_pb2.WaitRequest(id=cid, exec_id="e1"), None)
        assert waited.exit_status == 4
        await service.Delete(shim_pb2.DeleteRequest(id=cid, exec_id="e1"), None)

        tty = dict(process, args=["tty"])
        await service.Exec(exec_request("t1", tty, terminal=True, stdout=f"file://{tty_output}"),
                           None)  # fmt: skip
        await service.Start(shim_pb2.StartRequest(id=cid, exec_id="t1"), None)
        await service.ResizePty(
            shim_pb2.ResizePtyRequest(id=cid, exec_id="t1", width=80, height=24), None
        )
        assert (
            await service.Wait(shim_pb2.WaitRequest(id=cid, exec_id="t1"), None)
        ).exit_status == 0

        pids = await service.Pids(shim_pb2.PidsRequest(id=cid), None)
        assert init_pid in [p.pid for p in pids.processes]
        with pytest.raises(errdefs.FailedPrecondition, match="kill it"):
            await service.Delete(shim_pb2.DeleteRequest(id=cid), None)
        await service.Kill(shim_pb2.KillRequest(id=cid, signal=9), None)
        assert (await service.Wait(shim_pb2.WaitRequest(id=cid), None)).exit_status == 137
        await service.Delete(shim_pb2.DeleteRequest(id=cid), None)

    events = run_service(tmp_path, body)
    assert events[:4] == ["TaskCreate", "TaskStart", "TaskExecAdded", "TaskExecStarted"]
    assert events[-2:] == ["TaskExit", "TaskDelete"]
    assert tty_output.read_text().strip().startswith("/dev/pts/")


def test_create_needs_a_bundle_and_a_new_id(tmp_path: Path) -> None:
    async def body(service: TaskService) -> None:
        with pytest.raises(errdefs.InvalidArgument, match="bundle"):
            await service.Create(shim_pb2.CreateTaskRequest(id="no-bundle"), None)
        service.creating["busy"] = str(tmp_path)  # a Create of "busy" in flight
        with pytest.raises(errdefs.AlreadyExists):
            await service.Create(shim_pb2.CreateTaskRequest(id="busy", bundle=str(tmp_path)), None)
        assert service.bundles() == [str(tmp_path)]

    assert run_service(tmp_path, body) == []


def test_exit_is_announced_when_exit_handling_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Draining the output raises: Wait still answers, TaskExit is still published,
    and the failure is logged rather than lost in an unawaited task."""
    from pycontainerd.shim_v2 import stdio

    async def broken_drain(self: object, timeout: float = 0) -> None:
        raise RuntimeError("drain broke")

    monkeypatch.setattr(stdio._CopyingIO, "drain", broken_drain)
    bundle = make_bundle(tmp_path, "b3", ["sh", "-c", "echo out; exit 5"])
    output = tmp_path / "output.log"
    cid = _id(tmp_path, "c")

    async def body(service: TaskService) -> None:
        await service.Create(
            shim_pb2.CreateTaskRequest(
                id=cid, bundle=str(bundle), stdout=f"file://{output}", options=_options(tmp_path)
            ),
            None,
        )
        await service.Start(shim_pb2.StartRequest(id=cid), None)
        waited = await service.Wait(shim_pb2.WaitRequest(id=cid), None)
        assert waited.exit_status == 5
        await service.Delete(shim_pb2.DeleteRequest(id=cid), None)

    events = run_service(tmp_path, body)
    assert events[:3] == ["TaskCreate", "TaskStart", "TaskExit"]
    assert any("drain broke" in (r.exc_text or str(r.exc_info)) for r in caplog.records)

"""The task manager against a fake shim: create, delete, failures, dead shims, recovery."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest
from google.protobuf import any_pb2
from runtime_testlib import TASK_PID, pid_alive

from pycontainerd import errdefs
from pycontainerd.api.events import task_pb2 as events
from pycontainerd.api.services.events.v1 import events_pb2
from pycontainerd.events import typeurl
from pycontainerd.events.exchange import Exchange
from pycontainerd.runtime.manager import CreateOptions, TaskManager
from pycontainerd.runtime.recovery import recover_tasks

RUNTIME = "io.containerd.fake.v1"
NS = "testns"


def _opts(*args: str, options: any_pb2.Any | None = None) -> CreateOptions:
    spec = {"ociVersion": "1.0.2", "process": {"args": list(args or ["sleep"])}}
    return CreateOptions(spec=json.dumps(spec).encode(), runtime=RUNTIME, options=options)


class Collector:
    """Events published on an exchange, gathered in the background."""

    def __init__(self, exchange: Exchange) -> None:
        self.envelopes: list[events_pb2.Envelope] = []
        self._task = asyncio.get_running_loop().create_task(self._collect(exchange))

    @classmethod
    async def start(cls, exchange: Exchange) -> Collector:
        collector = cls(exchange)
        await asyncio.sleep(0)  # let the subscription begin
        return collector

    async def _collect(self, exchange: Exchange) -> None:
        async for envelope in exchange.subscribe([]):
            self.envelopes.append(envelope)

    def topics(self) -> list[str]:
        return [e.topic for e in self.envelopes]

    def event(self, topic: str):  # type: ignore[no-untyped-def]
        return next(typeurl.unpack(e.event) for e in self.envelopes if e.topic == topic)

    async def wait_for(self, topic: str) -> None:
        while topic not in self.topics():
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        self._task.cancel()


async def _until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_create_then_delete_leaves_nothing(run, make_manager, fake_shim, tmp_path: Path) -> None:
    async def scenario() -> None:
        manager: TaskManager = make_manager(Exchange())
        options = any_pb2.Any(type_url="containerd.runc.v1.Options", value=b"\x0a\x01x")
        task, pid = await manager.create(NS, "t1", _opts(options=options))
        assert pid == TASK_PID
        assert [t.id for t in manager.list(NS)] == ["t1"] and manager.list("other") == []
        bundle = task.bundle.path
        assert (bundle / "config.json").exists() and (bundle / "rootfs").is_dir()
        assert (bundle / "shim-binary-path").read_text() == str(fake_shim.binary)
        assert os.readlink(bundle / "work") == str(tmp_path / "root" / NS / "t1")
        call = json.loads((bundle / "calls").read_text().splitlines()[0])
        assert call["args"][:2] == ["-namespace", NS] and call["args"][-1] == "start"
        assert bytes.fromhex(call["stdin"]) == options.SerializeToString()
        assert call["env"] == {
            "TTRPC_ADDRESS": str(tmp_path / "d.sock.ttrpc"),
            "GRPC_ADDRESS": str(tmp_path / "d.sock"),
            "NAMESPACE": NS,
        }
        server = fake_shim.server_pid("t1")
        assert pid_alive(server)

        with pytest.raises(errdefs.AlreadyExists):
            await manager.create(NS, "t1", _opts())
        exit_info = await manager.delete(NS, "t1")
        assert exit_info.exit_status == 0
        assert not bundle.exists() and not (tmp_path / "root" / NS / "t1").exists()
        with pytest.raises(errdefs.NotFound):
            manager.get(NS, "t1")
        await _until(lambda: not pid_alive(server), "the shim to shut down")
        assert not fake_shim.deleted_by_binary("t1")  # a clean delete needs no cleanup
        await manager.close()

    run(scenario())


def test_failed_create_cleans_up_shim_and_bundle(run, make_manager, fake_shim) -> None:
    async def scenario() -> None:
        manager: TaskManager = make_manager(Exchange())
        with pytest.raises(errdefs.FailedPrecondition, match="refused"):
            await manager.create(NS, "bad", _opts("fail-create"))
        assert manager.list(NS) == []
        assert not manager.bundles.path_of(NS, "bad").exists()
        assert fake_shim.deleted_by_binary("bad")
        await _until(lambda: not pid_alive(fake_shim.server_pid("bad")), "the shim to exit")
        await manager.close()

    run(scenario())


def test_unknown_runtime_fails_before_anything_is_made(run, make_manager) -> None:
    async def scenario() -> None:
        manager: TaskManager = make_manager(Exchange())
        opts = _opts()
        opts.runtime = "io.containerd.missing.v9"
        with pytest.raises(errdefs.NotFound, match="containerd-shim-missing-v9"):
            await manager.create(NS, "t", opts)
        assert not manager.bundles.path_of(NS, "t").exists()
        await manager.close()

    run(scenario())


def test_dead_shim_publishes_exit_and_delete(run, make_manager, fake_shim) -> None:
    async def scenario() -> None:
        exchange = Exchange()
        manager: TaskManager = make_manager(exchange)
        collected = await Collector.start(exchange)
        task, _ = await manager.create(NS, "t1", _opts())
        os.kill(fake_shim.server_pid("t1"), signal.SIGKILL)
        await collected.wait_for("/tasks/delete")
        assert collected.topics() == ["/tasks/exit", "/tasks/delete"]
        exit_event = collected.event("/tasks/exit")
        assert (exit_event.container_id, exit_event.exit_status) == ("t1", 137)
        assert fake_shim.deleted_by_binary("t1")
        assert manager.list(NS) == [] and not task.bundle.path.exists()
        collected.stop()
        await manager.close()

    run(scenario())


def test_recorded_exit_is_reported_once(run, make_manager, fake_shim) -> None:
    async def scenario() -> None:
        exchange = Exchange()
        manager: TaskManager = make_manager(exchange)
        task, _ = await manager.create(NS, "t1", _opts())
        collected = await Collector.start(exchange)
        exit_event = events.TaskExit(container_id="t1", id="t1", pid=7, exit_status=3)
        exchange.publish(NS, "/tasks/exit", exit_event)  # as the shim would forward it
        await _until(lambda: (task.bundle.path / "init-exit").exists(), "the exit record")
        os.kill(fake_shim.server_pid("t1"), signal.SIGKILL)
        await collected.wait_for("/tasks/delete")
        assert collected.topics() == ["/tasks/exit", "/tasks/delete"]  # no second exit
        assert collected.event("/tasks/delete").exit_status == 3
        collected.stop()
        await manager.close()

    run(scenario())


def test_recovery_adopts_live_shims_and_cleans_dead_ones(run, make_manager, fake_shim) -> None:
    async def first_run() -> None:
        manager: TaskManager = make_manager(Exchange())
        await manager.create(NS, "alive", _opts())
        await manager.create(NS, "dies", _opts())
        await manager.close()  # the daemon stops; shims keep running

    async def second_run() -> None:
        exchange = Exchange()
        manager: TaskManager = make_manager(exchange)
        collected = await Collector.start(exchange)
        await recover_tasks(manager)
        assert [t.id for t in manager.list(NS)] == ["alive"]
        state = await manager.get(NS, "alive").state()
        assert state.pid == TASK_PID
        assert not manager.bundles.path_of(NS, "dies").exists()
        assert collected.topics() == ["/tasks/exit", "/tasks/delete"]
        assert collected.event("/tasks/exit").container_id == "dies"
        await manager.delete(NS, "alive")
        collected.stop()
        await manager.close()

    run(first_run())
    assert pid_alive(fake_shim.server_pid("alive"))
    os.kill(fake_shim.server_pid("dies"), signal.SIGKILL)
    run(second_run())


def test_shim_that_fails_to_start_leaves_nothing(run, make_manager, tmp_path: Path) -> None:
    broken = tmp_path / "containerd-shim-broken-v1"
    broken.write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 1\n")
    broken.chmod(0o755)

    async def scenario() -> None:
        manager: TaskManager = make_manager(Exchange())
        manager.runtimes["io.containerd.broken.v1"] = str(broken)
        opts = _opts()
        opts.runtime = "io.containerd.broken.v1"
        with pytest.raises(errdefs.FailedPrecondition, match="boom: cannot start"):
            await manager.create(NS, "t", opts)
        assert not manager.bundles.path_of(NS, "t").exists()
        assert not (tmp_path / "root" / NS / "t").exists()
        await manager.close()

    run(scenario())

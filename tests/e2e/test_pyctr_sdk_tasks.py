"""The SDK's containers and tasks directly: sync client, pipes, terminal spec, errors."""

from __future__ import annotations

import asyncio

import pytest

from pycontainerd import errdefs
from pycontainerd.client import Client, Stdio, TaskStatus
from pycontainerd.client.sync import Client as SyncClient
from pycontainerd.oci import with_process_args, with_user
from tests.support.ctr_env import CtrRunEnv

pytestmark = pytest.mark.e2e


def test_sync_client_runs_a_container(daemon, busybox_pushed):  # type: ignore[no-untyped-def]
    with CtrRunEnv(daemon) as env, SyncClient(str(daemon.address), env.namespace) as client:
        image = client.pull(busybox_pushed.ref, plain_http=True, unpack=True)
        args = with_process_args("sh", "-c", "id -un; cat; exit 5")
        container = client.new_container("s", image, args, with_user("app"))
        with container, container.new_task(Stdio.capture(b"fed\n")) as task:
            task.start()
            status = task.wait()
            assert (status.code, task.stdout) == (5, b"app\nfed\n")
            assert task.status() == TaskStatus.STOPPED
        assert client.containers.list() == []
        assert [s.kind.value for s in client.snapshots().list()] == ["Committed"]


def test_pipes_exec_and_wrong_stdio(daemon, busybox_pushed):  # type: ignore[no-untyped-def]
    async def scenario(namespace: str) -> None:
        async with Client(str(daemon.address), namespace) as client:
            image = await client.pull(busybox_pushed.ref, plain_http=True, unpack=True)
            args = with_process_args("sh", "-c", "while read l; do echo got $l; done")
            async with await client.new_container("p", image, args) as container:
                with pytest.raises(errdefs.InvalidArgument, match="terminal=True"):
                    await container.new_task(Stdio.terminal())
                async with await container.new_task(Stdio.pipe()) as task:
                    await task.start()
                    assert task.io is not None and task.io.stdin is not None
                    await task.io.stdin.write(b"one\n")
                    stream = task.io.stdout_stream
                    assert stream is not None
                    assert await asyncio.wait_for(stream.readline(), 10) == b"got one\n"
                    await task.close_stdin()
                    assert (await task.wait()).code == 0
                    assert (await task.delete()).code == 0
                with pytest.raises(errdefs.AlreadyExists):
                    await client.new_container("p", image, args)
            with pytest.raises(errdefs.NotFound):
                await client.load_container("p")

    with CtrRunEnv(daemon) as env:
        asyncio.run(scenario(env.namespace))

"""A stand-in shim v2 binary for the task manager's tests (no runtime, no containers).

``start`` launches a detached server process serving a minimal Task service on a
socket in $FAKE_SHIM_SOCKET_DIR and prints its address; ``delete`` prints a
DeleteResponse (exit 137) and leaves a ``deleted-by-binary`` marker next to the
socket. Each call appends its arguments to ``<bundle>/calls``. A spec whose
process args start with "fail-create" makes Create fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from google.protobuf import empty_pb2

from pycontainerd import errdefs
from pycontainerd.api.runtime.v2.task import shim_pb2
from pycontainerd.api.types.task import task_pb2
from pycontainerd.ttrpc import TtrpcServer, register_service

TASK_PID = 4242
TASK_SERVICE = shim_pb2.DESCRIPTOR.services_by_name["Task"]


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1] if name in args else ""


def _socket_path(task_id: str) -> Path:
    return Path(os.environ["FAKE_SHIM_SOCKET_DIR"]) / f"{task_id}.sock"


class FakeTask:
    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.created = False
        self.deleted = False

    async def Connect(self, request, ctx):  # noqa: N802
        return shim_pb2.ConnectResponse(shim_pid=os.getpid(), task_pid=TASK_PID)

    async def Create(self, request, ctx):  # noqa: N802
        spec = json.loads((Path(request.bundle) / "config.json").read_text())
        if spec.get("process", {}).get("args", [""])[0] == "fail-create":
            raise errdefs.FailedPrecondition("fake runtime refused to create the container")
        self.created = True
        return shim_pb2.CreateTaskResponse(pid=TASK_PID)

    async def State(self, request, ctx):  # noqa: N802
        if request.exec_id or not self.created or self.deleted:
            raise errdefs.NotFound(f"process {request.exec_id or request.id} does not exist")
        return shim_pb2.StateResponse(id=request.id, pid=TASK_PID, status=task_pb2.RUNNING)

    async def Delete(self, request, ctx):  # noqa: N802
        self.deleted = True
        return shim_pb2.DeleteResponse(pid=TASK_PID, exit_status=0)

    async def Shutdown(self, request, ctx):  # noqa: N802
        asyncio.get_running_loop().call_later(0.05, self.stop.set)
        return empty_pb2.Empty()


async def _serve(path: Path) -> None:
    stop = asyncio.Event()
    server = TtrpcServer()
    register_service(server, TASK_SERVICE, FakeTask(stop))
    await server.serve_unix(str(path))
    path.with_suffix(".pid").write_text(str(os.getpid()))
    await stop.wait()
    await server.close()


def _start(args: list[str]) -> None:
    path = _socket_path(_flag(args, "-id"))
    subprocess.Popen(
        [sys.executable, __file__, "serve", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while not path.with_suffix(".pid").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    Path("address").write_text(f"unix://{path}")
    sys.stdout.write(f"unix://{path}")


def main() -> None:
    args = sys.argv[1:]
    if args[0] == "serve":
        asyncio.run(_serve(Path(args[1])))
        return
    with open("calls", "a") as calls:
        env = {k: os.environ.get(k, "") for k in ("TTRPC_ADDRESS", "GRPC_ADDRESS", "NAMESPACE")}
        record = {"args": args, "env": env, "stdin": sys.stdin.buffer.read().hex()}
        calls.write(json.dumps(record) + "\n")
    if args[-1] == "start":
        _start(args)
    elif args[-1] == "delete":
        _socket_path(_flag(args, "-id")).with_suffix(".deleted-by-binary").touch()
        response = shim_pb2.DeleteResponse(pid=TASK_PID, exit_status=137)
        sys.stdout.buffer.write(response.SerializeToString())


if __name__ == "__main__":
    main()

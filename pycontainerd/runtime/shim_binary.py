"""Running a shim binary's ``start`` and ``delete`` commands.

``start`` launches the long-lived shim (which daemonizes: it is not our
child) and prints the ttrpc address to connect to; ``delete`` cleans up after
a shim that is gone and prints a protobuf ``DeleteResponse``. Both run with the
bundle as the working directory, as the shim v2 protocol requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import sys
from dataclasses import dataclass

from pycontainerd import errdefs
from pycontainerd.api.runtime.v2.task import shim_pb2
from pycontainerd.runtime.bundle import Bundle
from pycontainerd.runtime.own_shim import is_own_shim, start_through_zygote
from pycontainerd.shim_v2.contract import (
    DEFAULT_POOL_IDLE,
    DEFAULT_POOL_SIZE,
    POOL_IDLE_ENV,
    POOL_SIZE_ENV,
    RUNC_ROOT_ENV,
    SOCKET_DIR_ENV,
)

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
DELETE_TIMEOUT = 10.0


@dataclass(frozen=True)
class DaemonAddresses:
    """What a shim is told about the daemon that started it."""

    grpc: str
    ttrpc: str
    publish_binary: str
    debug: bool = False
    # Where our own shim keeps runtime state and sockets. Set, so that a
    # pycontainerd beside a real containerd never shares /run/containerd/runc
    # (containerd's shim default) with it; other shims ignore these.
    runtime_root: str = ""
    socket_dir: str = ""
    # How our own shim shares processes between containers (see shim_v2.pool).
    shim_pool_size: int = DEFAULT_POOL_SIZE
    shim_pool_idle: float = DEFAULT_POOL_IDLE


def default_publish_binary() -> str:
    """The program a shim would run to publish events (unused by v2 shims using ttrpc)."""
    for name in ("pycontainerd", "containerd"):
        found = shutil.which(name)
        if found:
            return found
    return sys.executable


def remove_dead_socket(address: str) -> None:
    """Remove a dead shim's socket file (shims only remove it on a clean shutdown)."""
    path = address.removeprefix("unix://")
    if not path.startswith("/"):
        return  # abstract or empty: nothing on disk
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        except OSError:
            return


@dataclass(frozen=True)
class ShimBinary:
    path: str
    bundle: Bundle
    daemon: DaemonAddresses

    def _args(self, *action: str, debug: bool = False) -> list[str]:
        args = [
            self.path,
            "-namespace",
            self.bundle.namespace,
            "-address",
            self.daemon.grpc,
            "-publish-binary",
            self.daemon.publish_binary,
            "-id",
            self.bundle.id,
        ]
        if debug:
            args.append("-debug")
        return args + list(action)

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TTRPC_ADDRESS": self.daemon.ttrpc,
            "GRPC_ADDRESS": self.daemon.grpc,
            "NAMESPACE": self.bundle.namespace,
            "MAX_SHIM_VERSION": "2",
            **({RUNC_ROOT_ENV: self.daemon.runtime_root} if self.daemon.runtime_root else {}),
            **({SOCKET_DIR_ENV: self.daemon.socket_dir} if self.daemon.socket_dir else {}),
            POOL_SIZE_ENV: str(self.daemon.shim_pool_size),
            POOL_IDLE_ENV: str(self.daemon.shim_pool_idle),
        }

    async def _run(self, args: list[str], stdin: bytes, timeout: float) -> tuple[int, bytes, bytes]:
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                cwd=self.bundle.path,
                env=self._env(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise errdefs.FailedPrecondition(f"cannot run shim {self.path}: {exc}") from exc
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate(stdin)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise errdefs.DeadlineExceeded(
                f"shim {self.path} {args[-1]} for task {self.bundle.id!r} did not finish "
                f"within {timeout:.0f}s"
            ) from None
        return proc.returncode or 0, out, err

    async def start(self, options: bytes = b"") -> str:
        """Run ``start`` and return the address the shim serves on.

        ``options`` is a serialized ``google.protobuf.Any`` of runtime options,
        handed to the shim on stdin (it may read cgroup settings from it). Our own
        shim reads them again at Create, so it is started without the command
        where its zygote can (see `own_shim`).
        """
        args = self._args("start", debug=self.daemon.debug)
        if is_own_shim(self.path):
            address = await start_through_zygote(
                args[1:], str(self.bundle.path), self._env(), options
            )
            if address is not None:
                return address
        code, out, err = await self._run(args, options, START_TIMEOUT)
        if code != 0:
            detail = (err or out).decode(errors="replace").strip()
            raise errdefs.FailedPrecondition(
                f"shim {self.path} failed to start task {self.bundle.id!r} (exit {code}): {detail}"
            )
        address = out.decode(errors="replace").strip()
        if not address:
            raise errdefs.FailedPrecondition(
                f"shim {self.path} started but printed no address for task {self.bundle.id!r}"
            )
        return address

    async def delete(self) -> shim_pb2.DeleteResponse:
        """Run ``delete`` to clean up after a dead shim; the exit it reports."""
        args = self._args("-bundle", str(self.bundle.path), "delete")
        code, out, err = await self._run(args, b"", DELETE_TIMEOUT)
        if code != 0:
            raise errdefs.FailedPrecondition(
                f"shim {self.path} delete of task {self.bundle.id!r} failed (exit {code}): "
                f"{err.decode(errors='replace').strip()}"
            )
        if err.strip():
            log.warning("shim cleanup of %s: %s", self.bundle.id, err.decode(errors="replace"))
        try:
            return shim_pb2.DeleteResponse.FromString(out)
        except Exception as exc:  # protobuf raises DecodeError; treat any as bad output
            raise errdefs.FailedPrecondition(
                f"shim {self.path} delete printed an invalid DeleteResponse: {exc}"
            ) from exc

"""Runtime information for Introspection.PluginInfo (containerd 2's ``RuntimeRequest``).

As containerd does, the daemon runs the runtime's shim with ``-info``, its
options on stdin, and decodes the RuntimeInfo the shim prints. Any shim that
speaks containerd 2's shim protocol answers it, ours included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from pycontainerd import errdefs
from pycontainerd.api.types import introspection_pb2
from pycontainerd.runtime.resolve import resolve_shim

DEFAULT_RUNTIME = "io.containerd.runc.v2"
INFO_TIMEOUT = 30.0
RUNTIME_REQUEST = introspection_pb2.RuntimeRequest.DESCRIPTOR.full_name


async def plugin_info(
    options: any_pb2.Any, runtimes: Mapping[str, str]
) -> introspection_pb2.RuntimeInfo:
    """The RuntimeInfo a runtime's shim reports; NotImplemented for other request types."""
    if options.type_url.rsplit("/", 1)[-1] != RUNTIME_REQUEST:
        raise errdefs.NotImplemented_(
            f"the task runtime answers {RUNTIME_REQUEST} requests, not "
            f"{errdefs.echo(options.type_url)!r}"
        )
    request = introspection_pb2.RuntimeRequest.FromString(options.value)
    shim = resolve_shim(request.runtime_path or DEFAULT_RUNTIME, runtimes)
    stdin = request.options.SerializeToString() if request.HasField("options") else b""
    proc = await asyncio.create_subprocess_exec(
        shim,
        "-info",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), INFO_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise errdefs.DeadlineExceeded(
            f"{shim} -info did not answer in {INFO_TIMEOUT:g}s"
        ) from None
    if proc.returncode != 0:
        raise errdefs.FailedPrecondition(
            f"{shim} -info failed ({proc.returncode}): {err.decode(errors='replace').strip()}"
        )
    try:
        return introspection_pb2.RuntimeInfo.FromString(out)
    except DecodeError as exc:
        raise errdefs.Internal(f"{shim} -info printed no RuntimeInfo: {exc}") from exc

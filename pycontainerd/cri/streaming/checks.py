"""The checks Exec, Attach and PortForward make before handing out a URL (kubelet's, containerd's)."""

from __future__ import annotations

from pycontainerd import errdefs
from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri.manager import CRIManager


def _stdio(what: str, stdin: bool, stdout: bool, stderr: bool, tty: bool) -> None:
    if tty and stderr:
        raise errdefs.InvalidArgument(f"{what}: tty and stderr cannot both be true")
    if not (stdin or stdout or stderr):
        raise errdefs.InvalidArgument(f"{what}: one of stdin, stdout, or stderr must be set")


def _running(m: CRIManager, container_id: str) -> str:
    if not container_id:
        raise errdefs.InvalidArgument("missing required container_id")
    container = m.index.container(container_id)
    if container.state != cri.CONTAINER_RUNNING:
        raise errdefs.FailedPrecondition(
            f"container {container.id} is in {cri.ContainerState.Name(container.state)} state"
        )
    return container.id


def check_exec(m: CRIManager, request: cri.ExecRequest) -> cri.ExecRequest:
    """The request with the container's full id; bad input raises."""
    _stdio("exec", request.stdin, request.stdout, request.stderr, request.tty)
    full = _running(m, request.container_id)
    if not request.cmd:
        raise errdefs.InvalidArgument("exec needs a command")
    out = cri.ExecRequest()
    out.CopyFrom(request)
    out.container_id = full
    return out


def check_attach(m: CRIManager, request: cri.AttachRequest) -> cri.AttachRequest:
    _stdio("attach", request.stdin, request.stdout, request.stderr, request.tty)
    full = _running(m, request.container_id)
    out = cri.AttachRequest()
    out.CopyFrom(request)
    out.container_id = full
    return out


def check_portforward(m: CRIManager, request: cri.PortForwardRequest) -> cri.PortForwardRequest:
    if not request.pod_sandbox_id:
        raise errdefs.InvalidArgument("missing required pod_sandbox_id")
    sandbox = m.index.sandbox(request.pod_sandbox_id)
    if not sandbox.ready:
        raise errdefs.FailedPrecondition(f"sandbox {sandbox.id} is not ready")
    out = cri.PortForwardRequest()
    out.CopyFrom(request)
    out.pod_sandbox_id = sandbox.id
    return out

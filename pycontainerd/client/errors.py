"""Turning gRPC failures into our error kinds (pycontainerd.errdefs)."""

from __future__ import annotations

import grpc

from pycontainerd import errdefs


def connect_hint(address: str) -> str:
    return f"is the daemon running? (pycontainerd --address {address})"


def from_rpc_error(exc: grpc.RpcError, address: str) -> errdefs.ContainerdError:
    """The errdefs kind for a failed call; a dead socket gets a hint on what to do."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else "") or code.name.lower()
    if code == grpc.StatusCode.UNAVAILABLE and _is_connection_failure(details):
        return errdefs.Unavailable(
            f"cannot connect to pycontainerd at {address}: {connect_hint(address)}"
        )
    return errdefs.from_code(code.value[0], details)


def _is_connection_failure(details: str) -> bool:
    lowered = details.lower()
    return any(
        marker in lowered
        for marker in ("failed to connect", "connection refused", "no such file", "connect failed")
    )

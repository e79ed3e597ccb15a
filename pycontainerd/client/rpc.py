"""The gRPC connection the service wrappers share: headers, error mapping, call helpers.

containerd scopes every call by the ``containerd-namespace`` header, and ties
new content to a lease by the ``containerd-lease`` header. The lease travels in
a context variable, so every call made inside ``use_lease`` (including calls in
tasks started there) carries it, like containerd's ``leases.WithLease``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc

from pycontainerd.client.errors import from_rpc_error

NAMESPACE_HEADER = "containerd-namespace"
LEASE_HEADER = "containerd-lease"
# Big enough for a 4 MiB content chunk plus framing, as containerd's client allows 16 MiB.
MAX_MESSAGE_SIZE = 16 << 20

_current_lease: contextvars.ContextVar[str] = contextvars.ContextVar(
    "pycontainerd_lease", default=""
)


def current_lease() -> str:
    """The lease id calls in this context are made under ("" when none)."""
    return _current_lease.get()


@contextlib.contextmanager
def use_lease(lease_id: str) -> Iterator[str]:
    """Attach ``lease_id`` to every call made inside the block."""
    token = _current_lease.set(lease_id)
    try:
        yield lease_id
    finally:
        _current_lease.reset(token)


class Connection:
    """One channel to the daemon and the namespace calls are made in."""

    def __init__(self, address: str, namespace: str, channel: grpc.aio.Channel) -> None:
        self.address = address
        self.namespace = namespace
        self.channel = channel

    def metadata(self) -> tuple[tuple[str, str], ...]:
        headers = [(NAMESPACE_HEADER, self.namespace)]
        lease = current_lease()
        if lease:
            headers.append((LEASE_HEADER, lease))
        return tuple(headers)

    def error(self, exc: grpc.RpcError) -> Exception:
        return from_rpc_error(exc, self.address)

    async def unary(self, method: Callable[..., Any], request: Any) -> Any:
        """Make a unary call; failures come back as errdefs kinds."""
        try:
            return await method(request, metadata=self.metadata())
        except grpc.RpcError as exc:
            raise self.error(exc) from None

    async def server_stream(self, method: Callable[..., Any], request: Any) -> AsyncIterator[Any]:
        """Iterate a server stream; cancels the call when the caller stops early."""
        call = method(request, metadata=self.metadata())
        try:
            async for reply in call:
                yield reply
        except grpc.RpcError as exc:
            raise self.error(exc) from None
        finally:
            call.cancel()


def open_channel(address: str) -> grpc.aio.Channel:
    target = address if "://" in address else f"unix://{address}"
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
            ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
        ],
    )

"""What every gRPC service shares: error mapping, namespaces, leases, timestamps."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from pycontainerd import errdefs, timestamps
from pycontainerd.h2grpc import ServicerContext
from pycontainerd.identifiers import validate_identifier

log = logging.getLogger(__name__)

NAMESPACE_HEADER = "containerd-namespace"
LEASE_HEADER = "containerd-lease"


def _metadata(context: ServicerContext, key: str) -> str:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else v.decode()
    return ""


def namespace_of(context: ServicerContext) -> str:
    """The request's namespace; containerd refuses namespaced calls without one."""
    namespace = _metadata(context, NAMESPACE_HEADER)
    if not namespace:
        raise errdefs.FailedPrecondition(
            "namespace is required: set it with -n/--namespace (ctr) or the "
            f"{NAMESPACE_HEADER} header"
        )
    return validate_identifier(namespace, "namespace")


def caller_namespace(context: ServicerContext) -> str:
    """The request's namespace ("" without one), for calls that need none."""
    namespace = _metadata(context, NAMESPACE_HEADER)
    return validate_identifier(namespace, "namespace") if namespace else ""


def lease_of(context: ServicerContext) -> str:
    return _metadata(context, LEASE_HEADER)


timestamp = timestamps.from_datetime


async def _abort(context: ServicerContext, exc: BaseException, name: str) -> None:
    code = errdefs.code_of(exc)
    if code == errdefs.Code.UNKNOWN:
        log.exception("%s failed", name)
    await context.abort(code, errdefs.status_message(exc))


def rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Map our errors to gRPC status codes, for unary and streaming handlers."""
    name = method.__qualname__
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(self: Any, request: Any, context: ServicerContext) -> Any:
            try:
                async for item in method(self, request, context):
                    yield item
            except (errdefs.ContainerdError, OSError, ValueError) as exc:
                await _abort(context, exc, name)

        return stream

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except (errdefs.ContainerdError, OSError, ValueError) as exc:
            await _abort(context, exc, name)

    return unary


def field_paths(mask: Any) -> list[str]:
    return list(mask.paths) if mask is not None else []

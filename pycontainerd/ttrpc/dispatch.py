"""The server's table of services and the running of one call against it.

Mirrors containerd/ttrpc services.go: an unknown service or method answers
UNIMPLEMENTED, a payload that does not parse answers INTERNAL, and a handler's
error becomes the response status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError, Message

from pycontainerd.errdefs import AlreadyExists, Code, ContainerdError, InvalidArgument
from pycontainerd.ttrpc.protocol import Metadata, ReceivedRequest
from pycontainerd.ttrpc.status import status_of

log = logging.getLogger(__name__)

Handler = Callable[[Any, "RequestContext"], Awaitable[Message]]
"""``async def handler(request, ctx) -> response``; raise errdefs errors to fail the call."""


@dataclass(frozen=True, slots=True)
class Method:
    """A callable method: the request message class and the handler that serves it."""

    request_type: type[Message]
    handler: Handler


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a handler knows about its call besides the request message.

    ``deadline`` is on the event loop's clock (``loop.time()``); the handler is
    cancelled when it passes, and the caller gets DEADLINE_EXCEEDED.
    """

    service: str
    method: str
    metadata: Metadata
    deadline: float | None

    def metadata_value(self, key: str) -> str | None:
        """First value for ``key`` (matched lower-case, as Go's ttrpc.MD does), or None."""
        values = self.metadata.get(key.lower()) or self.metadata.get(key)
        return values[0] if values else None

    def time_remaining(self) -> float | None:
        """Seconds until the deadline (may be negative), or None without a deadline."""
        if self.deadline is None:
            return None
        return self.deadline - asyncio.get_running_loop().time()


@dataclass(frozen=True, slots=True)
class Reply:
    code: Code
    message: str = ""
    payload: bytes = b""


class ServiceTable:
    """Registered services by fully qualified name (e.g. ``containerd.task.v2.Task``)."""

    def __init__(self) -> None:
        self._services: dict[str, dict[str, Method]] = {}

    def register(self, service_name: str, methods: Mapping[str, Method]) -> None:
        if not service_name:
            raise InvalidArgument("a ttrpc service needs a fully qualified name")
        if service_name in self._services:
            raise AlreadyExists(f"ttrpc service {service_name} is already registered")
        self._services[service_name] = dict(methods)

    @property
    def service_names(self) -> list[str]:
        return sorted(self._services)

    async def call(self, request: ReceivedRequest) -> Reply:
        """Run one request to completion and say what to answer."""
        methods = self._services.get(request.service)
        if methods is None:
            return Reply(Code.UNIMPLEMENTED, f"service {request.service}")
        method = methods.get(request.method)
        if method is None:
            return Reply(Code.UNIMPLEMENTED, f"method {request.method}")
        try:
            message = method.request_type.FromString(request.payload)
        except DecodeError as exc:
            return Reply(Code.INTERNAL, f"ttrpc: error unmarshalling payload: {exc}")

        deadline = _deadline(request.timeout_nano)
        ctx = RequestContext(request.service, request.method, request.metadata, deadline)
        try:
            async with asyncio.timeout_at(deadline):
                response = await method.handler(message, ctx)
        except Exception as exc:  # every failure must reach the caller as a status
            if not isinstance(exc, ContainerdError | TimeoutError):
                log.warning("ttrpc %s/%s failed", request.service, request.method, exc_info=exc)
            code, text = status_of(exc)
            return Reply(code, text)
        return _encode(response)


def _deadline(timeout_nano: int) -> float | None:
    # Go applies any non-zero timeout, so one already in the past fails at once.
    if timeout_nano == 0:
        return None
    return asyncio.get_running_loop().time() + timeout_nano / 1e9


def _encode(response: object) -> Reply:
    if response is None:
        return Reply(Code.UNKNOWN, "ttrpc: marshal called with nil")
    if not isinstance(response, Message):
        return Reply(
            Code.INTERNAL, f"ttrpc: error unsupported response type: {type(response).__name__}"
        )
    return Reply(Code.OK, payload=response.SerializeToString())

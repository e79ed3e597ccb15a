"""The servicer context handlers receive: the part of grpc.aio's that services use."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from pycontainerd.errdefs import Code

if TYPE_CHECKING:
    from pycontainerd.h2grpc.call import Call

Metadata = tuple[tuple[str, str | bytes], ...]


class _EndOfRequests:
    def __repr__(self) -> str:
        return "EOF"


#: What :meth:`ServicerContext.read` returns after the last request message.
EOF = _EndOfRequests()


class AbortError(Exception):
    """Raised by :meth:`ServicerContext.abort`; the call ends with the status it set."""


class ServicerContext:
    """A call's context, with grpc.aio.ServicerContext's names and meanings."""

    __slots__ = ("_call", "_code", "_details", "_trailing", "_deadline", "_callbacks")

    def __init__(self, call: Call, timeout: float | None) -> None:
        self._call = call
        self._code: Code | None = None
        self._details = ""
        self._trailing: Metadata = ()
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._callbacks: list[Callable[[ServicerContext], Any]] = []

    # -- the request ---------------------------------------------------------------

    def invocation_metadata(self) -> Metadata:
        return self._call.request.metadata

    def peer(self) -> str:
        return "unix:"

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def cancelled(self) -> bool:
        return self._call.cancelled

    def done(self) -> bool:
        return self._call.finished

    async def read(self) -> Any:
        """The next request message of a streaming call (EOF after the last)."""
        return await self._call.read()

    # -- the response ------------------------------------------------------------------

    async def write(self, message: Any) -> None:
        await self._call.send(message)

    async def send_initial_metadata(self, metadata: Sequence[tuple[str, str | bytes]]) -> None:
        await self._call.send_headers(tuple(metadata))

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self._trailing = tuple(metadata)

    def trailing_metadata(self) -> Metadata:
        return self._trailing

    def set_code(self, code: Code) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> Code | None:
        return self._code

    def details(self) -> str:
        return self._details

    async def abort(
        self, code: Code, details: str = "", trailing_metadata: Metadata = ()
    ) -> NoReturn:
        if code is Code.OK:
            raise ValueError("abort() needs a status code other than OK")
        self._code = code
        self._details = details
        if trailing_metadata:
            self._trailing = tuple(trailing_metadata)
        raise AbortError(details)

    def add_done_callback(self, callback: Callable[[ServicerContext], Any]) -> None:
        self._callbacks.append(callback)

    def run_done_callbacks(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

"""A blocking client for simple scripts: the asyncio client on a background event loop.

    with Client(address) as client:
        client.pull("docker.io/library/busybox:latest")
        for info in client.content.list():
            ...
        with client.lease():
            ...

Coroutine methods become blocking calls; async iterators (``content.read``,
``events.subscribe``) become ordinary iterators. Handles the async client
returns (containers, tasks, processes, snapshot services) come back wrapped the
same way, and their ``async with`` becomes ``with``:

    with client.new_container("demo", image, with_process_args("true")) as container:
        with container.new_task(Stdio.capture()) as task:
            task.start()
            print(task.wait().code, task.stdout)

``Stdio.pipe()`` streams are asyncio objects: use the async client for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from datetime import timedelta
from typing import Any, TypeVar

from pycontainerd.client import client as async_client
from pycontainerd.client.container import Container
from pycontainerd.client.models import Lease
from pycontainerd.client.rpc import use_lease
from pycontainerd.client.snapshots import SnapshotService
from pycontainerd.client.task import Process

T = TypeVar("T")
_SERVICES = (
    "namespaces",
    "content",
    "images",
    "leases",
    "events",
    "introspection",
    "containers",
    "tasks",
    "diff",
)
#: Objects returned by the async client that get a blocking wrapper too.
_HANDLES = (Container, Process, SnapshotService)


class _LoopThread:
    """An event loop running in a daemon thread, accepting coroutines from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        # The call runs in a copy of the caller's context, so use_lease() in the
        # calling thread reaches the call.
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        done = object()

        async def next_item() -> object:
            return await anext(iterator, done)

        async def close() -> None:
            await iterator.aclose()  # type: ignore[attr-defined]

        try:
            while (item := self.run(next_item())) is not done:
                yield item  # type: ignore[misc]
        finally:
            self.run(close())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class _Blocking:
    """Wraps an object whose methods are coroutines or async iterators."""

    def __init__(self, target: Any, runner: _LoopThread) -> None:
        self._target = target
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if inspect.iscoroutinefunction(attribute):
            return self._blocking_call(attribute)
        if inspect.isasyncgenfunction(attribute):
            return self._blocking_iterator(attribute)
        if inspect.ismethod(attribute):
            return self._wrapping_call(attribute)
        return attribute

    def _wrap(self, value: Any) -> Any:
        return _Blocking(value, self._runner) if isinstance(value, _HANDLES) else value

    def _blocking_call(self, method: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._wrap(self._runner.run(method(*args, **kwargs)))

        call.__doc__ = method.__doc__
        return call

    def _wrapping_call(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._wrap(method(*args, **kwargs))

        call.__doc__ = method.__doc__
        return call

    def __enter__(self) -> Any:
        return self._wrap(self._runner.run(self._target.__aenter__()))

    def __exit__(self, *exc_info: Any) -> None:
        self._runner.run(self._target.__aexit__(*exc_info))

    def _blocking_iterator(self, method: Callable[..., AsyncIterator[T]]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Iterator[T]:
            return self._runner.iterate(method(*args, **kwargs))

        call.__doc__ = method.__doc__
        return call


class Client(_Blocking):
    """The blocking twin of :class:`pycontainerd.client.Client`, with the same methods."""

    def __init__(
        self,
        address: str,
        namespace: str = async_client.DEFAULT_NAMESPACE,
        *,
        connect_timeout: float = async_client.DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        runner = _LoopThread()
        try:
            inner = runner.run(_make_client(address, namespace, connect_timeout))
        except BaseException:
            runner.stop()
            raise
        super().__init__(inner, runner)
        for service in _SERVICES:
            setattr(self, service, _Blocking(getattr(inner, service), runner))

    def close(self) -> None:
        try:
            self._runner.run(self._target.close())
        finally:
            self._runner.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def lease(
        self,
        *,
        expire: timedelta | None = async_client.DEFAULT_LEASE_EXPIRY,
        lease_id: str | None = None,
    ) -> Iterator[Lease]:
        """Create a lease, attach it to every call made inside, delete it on exit."""
        created = self._runner.run(self._target.leases.create(lease_id, expire=expire))
        try:
            with use_lease(created.id):
                yield created
        finally:
            self._runner.run(self._target.leases.delete(created.id))


async def _make_client(address: str, namespace: str, timeout: float) -> async_client.Client:
    """Build the channel inside the loop thread, where grpc.aio wants it."""
    client = async_client.Client(address, namespace, connect_timeout=timeout)
    try:
        return await client.connect()
    except BaseException:
        await client.close()
        raise

"""Remembering, in the bundle, the exit of each task's init process.

Shims report exits as ``/tasks/exit`` events. If a shim later dies, or the
daemon restarts and finds it gone, the daemon must say how the task ended:
with the exit recorded here it reports the real status once, instead of
guessing and publishing a second exit event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from google.protobuf.message import DecodeError

from pycontainerd.api.events import task_pb2 as events
from pycontainerd.events import typeurl
from pycontainerd.events.exchange import Exchange
from pycontainerd.runtime.bundle import EXIT_FILE, Bundle

log = logging.getLogger(__name__)

EXIT_TOPIC = "/tasks/exit"
DELETE_TOPIC = "/tasks/delete"


def recorded_exit(bundle: Bundle) -> events.TaskExit | None:
    data = bundle.read_bytes(EXIT_FILE)
    if not data:
        return None
    try:
        return events.TaskExit.FromString(data)
    except DecodeError:
        return None


def record_exit(bundle: Bundle, exit_event: events.TaskExit) -> None:
    with contextlib.suppress(FileNotFoundError):  # the bundle was deleted meanwhile
        bundle.write_bytes(EXIT_FILE, exit_event.SerializeToString())


class ExitRecorder:
    """Follows ``/tasks/exit`` on the exchange and records init exits of known tasks."""

    def __init__(self, exchange: Exchange, bundle_of: Callable[[str, str], Bundle | None]) -> None:
        self.exchange = exchange
        self.bundle_of = bundle_of
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        async for envelope in self.exchange.subscribe([f'topic=="{EXIT_TOPIC}"']):
            event = typeurl.unpack(envelope.event)
            if not isinstance(event, events.TaskExit) or event.id != event.container_id:
                continue  # an exec process, or an unknown payload
            bundle = self.bundle_of(envelope.namespace, event.container_id)
            if bundle is not None:
                try:
                    record_exit(bundle, event)
                except OSError as exc:
                    log.warning("cannot record exit of %s: %s", event.container_id, exc)

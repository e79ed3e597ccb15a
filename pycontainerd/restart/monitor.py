"""The restart monitor's loop: every interval, bring labelled containers to their status.

It runs in the daemon, over the metadata store and the task manager (as the
tasks service does), never through the API socket. Per namespace, every
container with a restart status label is looked at: one meant to be
``running`` whose task is not running (and not paused) is, when its policy says
so, given a new task (the old one deleted) with the log URI of its labels or no
IO, and its restart count goes up; one meant to be ``stopped`` has its task
killed and deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from dataclasses import dataclass

from pycontainerd import errdefs, filters
from pycontainerd.metadata.containers import Container, container_adaptor
from pycontainerd.metadata.placement import call
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.restart import policy
from pycontainerd.runtime.manager import TaskManager
from pycontainerd.runtime.task import Status
from pycontainerd.services.snapshots import mounts_to_api
from pycontainerd.services.tasks import create_options
from pycontainerd.stdio_paths import StdioPaths

log = logging.getLogger(__name__)

RUNNING = "running"
STOPPED = "stopped"
#: How long a kill may take to end a task before the monitor gives up on it this round.
KILL_WAIT = 10.0
#: Logged (debug) after each round: what a watcher counts rounds by.
ROUND_DONE = "restart monitor: round done"
_STATUS_NAMES = {status: status.name.lower() for status in Status}


@dataclass(frozen=True)
class Observed:
    """A container's task as the monitor found it ("" when it has none)."""

    status: str
    exit_status: int = 0


class RestartMonitor:
    def __init__(self, metadata: MetadataStore, tasks: TaskManager, interval: float) -> None:
        self.metadata = metadata
        self.tasks = tasks
        self.interval = interval
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop().create_task(self._run(), name="restart monitor")

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop

    async def _run(self) -> None:
        try:
            await self.reset_explicitly_stopped()
        except Exception:  # the monitor runs on without it
            log.exception("restart monitor: resetting explicit stops failed")
        while True:
            try:
                await self.reconcile()
            except Exception:  # one bad round must not end the monitor
                log.exception("restart monitor: reconcile failed")
            await asyncio.sleep(self.interval)

    async def _labelled(self, namespace: str) -> list[Container]:
        found: list[Container] = await call(self.metadata.containers.list, namespace)
        return await filters.select([f'labels."{policy.STATUS_LABEL}"'], found, container_adaptor)

    async def reset_explicitly_stopped(self) -> None:
        """At start-up, ``always`` containers forget an explicit stop (containerd's rule;
        ``unless-stopped`` is the policy that remembers it across a restart)."""
        for ns in await call(self.metadata.namespaces.list):
            for container in await self._labelled(ns.name):
                labels = container.labels
                try:
                    rp = policy.parse_policy(labels.get(policy.POLICY_LABEL, ""))
                except errdefs.InvalidArgument as exc:
                    log.error("restart policy of %s/%s: %s", ns.name, container.id, exc)
                    continue
                if rp.name == policy.ALWAYS and policy.explicitly_stopped(labels):
                    await self._set_label(
                        ns.name, container, policy.EXPLICITLY_STOPPED_LABEL, "false"
                    )

    async def reconcile(self) -> None:
        namespaces = await call(self.metadata.namespaces.list)
        await asyncio.gather(*(self._reconcile_namespace(ns.name) for ns in namespaces))
        log.debug(ROUND_DONE)

    async def _reconcile_namespace(self, namespace: str) -> None:
        try:
            containers = await self._labelled(namespace)
        except errdefs.ContainerdError as exc:
            log.error("restart monitor: containers of %s: %s", namespace, exc)
            return
        results = await asyncio.gather(
            *(self._reconcile_container(namespace, c) for c in containers), return_exceptions=True
        )
        for container, result in zip(containers, results, strict=True):
            if isinstance(result, BaseException):
                log.error("restart monitor: %s/%s: %s", namespace, container.id, result)

    async def _observe(self, namespace: str, container_id: str) -> Observed | None:
        """The task's status; None when it could not be read (no task, a lost shim)."""
        try:
            state = await self.tasks.get(namespace, container_id).state()
        except errdefs.ContainerdError:
            return None
        return Observed(_STATUS_NAMES.get(state.status, ""), state.exit_status)

    async def _reconcile_container(self, namespace: str, container: Container) -> None:
        labels = container.labels
        desired = labels.get(policy.STATUS_LABEL, "")
        observed = await self._observe(namespace, container.id)
        if observed is not None and observed.status == desired:
            return
        if observed is None:
            if desired == STOPPED:
                return
            observed = Observed("")
        if desired == RUNNING:
            if observed.status in ("paused", "pausing"):
                return
            if not policy.should_restart(labels, observed.exit_status):
                return
            if labels.get(policy.LOG_PATH_LABEL):
                log.warning(
                    'label "%s" is not supported (as since containerd 2.0); use "%s"',
                    policy.LOG_PATH_LABEL,
                    policy.LOG_URI_LABEL,
                )
            count = policy.restart_count(labels) + 1
            await self._restart(namespace, container, labels.get(policy.LOG_URI_LABEL, ""), count)
        elif desired == STOPPED:
            await self._end_task(namespace, container.id)

    async def _restart(
        self, namespace: str, container: Container, log_uri: str, count: int
    ) -> None:
        if container.spec is None:
            raise errdefs.FailedPrecondition(f"container {container.id!r} has no spec")
        terminal = bool(json.loads(container.spec.value).get("process", {}).get("terminal"))
        io = StdioPaths()
        if log_uri:
            io = StdioPaths(stdout=log_uri, stderr=log_uri, terminal=terminal)
        await self._set_label(namespace, container, policy.COUNT_LABEL, str(count))
        await self._end_task(namespace, container.id)
        rootfs = []
        if container.snapshot_key:
            if not container.snapshotter:
                raise errdefs.FailedPrecondition(
                    f"container {container.id!r} has a snapshot key but no snapshotter"
                )
            snapshots = self.metadata.snapshots.get(container.snapshotter)
            rootfs = mounts_to_api(await call(snapshots.mounts, namespace, container.snapshot_key))
        task, _ = await self.tasks.create(
            namespace, container.id, create_options(container, rootfs=rootfs, io=io)
        )
        await task.start()
        log.info("restart monitor: restarted %s/%s (restart %d)", namespace, container.id, count)

    async def _end_task(self, namespace: str, container_id: str) -> None:
        """Kill the container's task if it runs, and delete it; nothing when it has none."""
        try:
            task = self.tasks.get(namespace, container_id)
        except errdefs.NotFound:
            return
        try:
            state = await task.state()
            if state.status != Status.STOPPED:
                await task.kill(signal.SIGKILL, all=True)
                await asyncio.wait_for(task.wait(), KILL_WAIT)
        except TimeoutError as exc:
            raise errdefs.DeadlineExceeded(
                f"task {container_id!r} did not end within {KILL_WAIT:g}s of SIGKILL"
            ) from exc
        except errdefs.ContainerdError as exc:  # already gone or stopped: delete it
            log.debug("restart monitor: ending task %s: %s", container_id, exc)
        with contextlib.suppress(errdefs.NotFound):
            await self.tasks.delete(namespace, container_id)

    async def _set_label(self, namespace: str, container: Container, key: str, value: str) -> None:
        requested = Container(id=container.id, labels={key: value})
        await call(self.metadata.containers.update, namespace, requested, [f"labels.{key}"])

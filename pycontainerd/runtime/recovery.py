"""Finding the tasks of a previous daemon run: reconnect to live shims, clean up dead ones."""

from __future__ import annotations

import logging

from pycontainerd import errdefs
from pycontainerd.runtime.bundle import ADDRESS_FILE, SHIM_BINARY_FILE, Bundle
from pycontainerd.runtime.manager import TaskManager
from pycontainerd.runtime.shim_binary import ShimBinary
from pycontainerd.runtime.shim_task import ShimTask

log = logging.getLogger(__name__)


async def recover_tasks(manager: TaskManager) -> None:
    """Walk the bundles on disk; adopt each task whose shim answers, clean up the rest."""
    for bundle in manager.bundles.existing():
        await _recover_one(manager, bundle)
    manager.bundles.remove_orphan_work_dirs(keep=manager.task_keys())


async def _recover_one(manager: TaskManager, bundle: Bundle) -> None:
    shim_path = bundle.read(SHIM_BINARY_FILE)
    if not shim_path:
        log.warning("bundle %s has no shim binary recorded; removing it", bundle.path)
        _remove(bundle)
        return
    task = ShimTask(bundle, ShimBinary(shim_path, bundle, manager.daemon))
    try:
        task.log.open()
        address = bundle.read(ADDRESS_FILE)
        if not address:
            raise errdefs.NotFound(f"bundle {bundle.path} has no shim address")
        await task.attach(address, on_close=manager.on_close_for(task))
    except (errdefs.ContainerdError, OSError) as exc:
        log.warning(
            "shim of task %s (namespace %s) is gone (%s); cleaning up",
            bundle.id,
            bundle.namespace,
            exc,
        )
        await manager.cleanup_dead_shim(task)
        return
    log.info("reconnected to the shim of task %s (namespace %s)", bundle.id, bundle.namespace)
    manager.adopt(task)


def _remove(bundle: Bundle) -> None:
    try:
        bundle.delete()
    except (OSError, errdefs.ContainerdError) as exc:
        log.error("cannot remove bundle %s: %s", bundle.path, exc)

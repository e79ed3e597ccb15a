"""``delete``: clean up after a shim that died, from what its bundle records.

containerd runs this when it lost a shim (``-id ID -bundle PATH delete``, the
bundle also the working directory). The runtime and its root come from the
``options.json`` and ``runtime`` files the shim wrote at Create; the container is
force-deleted from the runtime, the rootfs unmounted, and the answer is a
``DeleteResponse`` on stdout with exit status 137 (the container was killed), as
containerd's runc shim reports.
"""

from __future__ import annotations

import logging
import os
import signal
import time

from pycontainerd import errdefs
from pycontainerd.api.runtime.v2.task import shim_pb2
from pycontainerd.mount import MNT_DETACH, unmount_all
from pycontainerd.oci.runtime import OciRuntime, SubprocessRunner
from pycontainerd.shim_v2 import pool
from pycontainerd.shim_v2.container import INIT_PID_FILE, LOG_FILE, read_pid_file
from pycontainerd.shim_v2.flags import ShimFlags
from pycontainerd.shim_v2.options import read_options
from pycontainerd.shim_v2.start import ADDRESS_FILE, UNIX_PREFIX
from pycontainerd.unix_socket import listening

log = logging.getLogger(__name__)

KILLED_STATUS = 128 + signal.SIGKILL


async def cleanup(flags: ShimFlags, bundle: str) -> shim_pb2.DeleteResponse:
    """Do the ``delete`` action; problems are logged (to stderr), not raised."""
    if not flags.id:
        raise errdefs.InvalidArgument("delete needs -id")
    options = read_options(bundle)
    try:
        runtime = OciRuntime(
            SubprocessRunner(),
            binary=options.binary,
            root=options.runtime_root(flags.namespace),
            log_path=os.path.join(bundle, LOG_FILE),
            systemd_cgroup=options.systemd_cgroup,
        )
        await runtime.delete(flags.id, force=True)
    except errdefs.NotFound:
        pass
    except errdefs.ContainerdError as exc:
        log.warning("runtime delete of %s failed: %s", flags.id, exc)
    rootfs = os.path.join(bundle, "rootfs")
    try:
        unmount_all(rootfs)
    except errdefs.ContainerdError as exc:
        log.warning("unmounting %s failed, detaching: %s", rootfs, exc)
        unmount_all(rootfs, flags=MNT_DETACH)
    _leave_shim(bundle, flags.id)
    response = shim_pb2.DeleteResponse(
        pid=read_pid_file(os.path.join(bundle, INIT_PID_FILE)), exit_status=KILLED_STATUS
    )
    response.exited_at.FromNanoseconds(time.time_ns())
    return response


def _leave_shim(bundle: str, container_id: str) -> None:
    """Drop the container's entry on its shim; a dead shim's files go with the last one."""
    try:
        with open(os.path.join(bundle, ADDRESS_FILE), encoding="utf-8") as f:
            address = f.read().strip()
    except OSError:
        return
    path = address.removeprefix(UNIX_PREFIX)
    if not path.startswith("/"):
        return
    pool.leave(path, container_id)
    with pool.placement_lock(os.path.dirname(path)):
        if not listening(path):
            pool.forget_shim(path)  # the dead shim's socket, pid file and members

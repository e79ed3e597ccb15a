"""The ``io.containerd.runtime.v2.task`` plugin: the task manager, with its runtime table.

Config (over the defaults, entry by entry)::

    [plugins."io.containerd.runtime.v2.task".runtimes."io.containerd.runc.v2"]
      shim = "containerd-shim-runc-v2"
"""

from __future__ import annotations

import copy

from pycontainerd import plugin
from pycontainerd.runtime.bundle import BundleStore
from pycontainerd.runtime.manager import TaskManager
from pycontainerd.runtime.recovery import recover_tasks
from pycontainerd.runtime.resolve import DEFAULT_RUNTIMES, runtime_table
from pycontainerd.runtime.shim_binary import DaemonAddresses, default_publish_binary


@plugin.register(
    plugin.RUNTIME_V2,
    "task",
    requires=(plugin.EVENT,),
    config={"runtimes": copy.deepcopy(DEFAULT_RUNTIMES)},
)
async def init_task_manager(ic: plugin.InitContext) -> TaskManager:
    cfg = ic.daemon_config
    daemon = DaemonAddresses(
        grpc=cfg.grpc.address,
        ttrpc=cfg.ttrpc,
        publish_binary=default_publish_binary(),
        debug=cfg.log_level in ("debug", "trace"),
        runtime_root=str(cfg.state / "runc"),
        socket_dir=str(cfg.state / "s"),
    )
    manager = TaskManager(
        BundleStore(state=ic.state, root=ic.root),
        runtime_table(ic.config.get("runtimes")),
        daemon,
        ic.get(plugin.EVENT),
    )
    await recover_tasks(manager)
    return manager

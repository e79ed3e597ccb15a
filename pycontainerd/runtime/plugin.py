"""The ``io.containerd.runtime.v2.task`` plugin: the task manager, with its runtime table.

Config (runtimes over the defaults, entry by entry)::

    [plugins."io.containerd.runtime.v2.task"]
      # Containers (without a group annotation) per process of our own shim;
      # 1 gives each container its own shim, as containerd does. See shim_v2.pool.
      shim_pool_size = 8
      # Seconds an idle pool shim waits for a new container before it exits.
      shim_pool_idle = 10.0
    [plugins."io.containerd.runtime.v2.task".runtimes."io.containerd.runc.v2"]
      shim = "containerd-shim-runc-v2"
"""

from __future__ import annotations

import copy

from pycontainerd import plugin
from pycontainerd.config import number_setting
from pycontainerd.remotes.platforms import default_platform
from pycontainerd.runtime.bundle import BundleStore
from pycontainerd.runtime.manager import TaskManager
from pycontainerd.runtime.recovery import recover_tasks
from pycontainerd.runtime.resolve import DEFAULT_RUNTIMES, runtime_table
from pycontainerd.runtime.shim_binary import DaemonAddresses, default_publish_binary
from pycontainerd.shim_v2.contract import DEFAULT_POOL_IDLE, DEFAULT_POOL_SIZE

URI = f"{plugin.RUNTIME_V2}.task"


@plugin.register(
    plugin.RUNTIME_V2,
    "task",
    requires=(plugin.EVENT,),
    config={
        "runtimes": copy.deepcopy(DEFAULT_RUNTIMES),
        "shim_pool_size": DEFAULT_POOL_SIZE,
        "shim_pool_idle": DEFAULT_POOL_IDLE,
    },
)
async def init_task_manager(ic: plugin.InitContext) -> TaskManager:
    # BuildKit's containerd worker builds for the platforms the runtime reports.
    ic.platforms.append(default_platform().to_dict())
    cfg = ic.daemon_config
    ic.make_dirs(ic.root, ic.state)
    daemon = DaemonAddresses(
        grpc=cfg.grpc.address,
        ttrpc=cfg.ttrpc,
        publish_binary=default_publish_binary(),
        debug=cfg.log_level in ("debug", "trace"),
        runtime_root=str(cfg.state / "runc"),
        socket_dir=str(cfg.state / "s"),
        shim_pool_size=int(number_setting(URI, ic.config, "shim_pool_size", minimum=1)),
        shim_pool_idle=number_setting(URI, ic.config, "shim_pool_idle", minimum=0),
    )
    manager = TaskManager(
        BundleStore(state=ic.state, root=ic.root),
        runtime_table(ic.config.get("runtimes")),
        daemon,
        ic.get(plugin.EVENT),
    )
    await recover_tasks(manager)
    manager.prewarm_own_shim()
    return manager

"""The ``io.containerd.monitor.container.v1.restart`` plugin (containerd's restart monitor).

Config::

    [plugins."io.containerd.monitor.container.v1.restart"]
      interval = "10s"

containerd 1.x named the section ``io.containerd.internal.v1.restart``; it is
still read when the new one is absent, as containerd 2 migrates it.
"""

from __future__ import annotations

import logging

from pycontainerd import errdefs, plugin
from pycontainerd.config import duration_seconds
from pycontainerd.restart.monitor import RestartMonitor
from pycontainerd.restart.policy import POLICIES

MONITOR = "io.containerd.monitor.container.v1"
URI = f"{MONITOR}.restart"
OLD_URI = f"{plugin.INTERNAL}.restart"
DEFAULT_INTERVAL = "10s"

log = logging.getLogger(__name__)


@plugin.register(
    MONITOR,
    "restart",
    requires=(plugin.EVENT, plugin.METADATA, plugin.RUNTIME_V2),
    config={"interval": DEFAULT_INTERVAL},
)
def init_restart_monitor(ic: plugin.InitContext) -> RestartMonitor:
    ic.capabilities.extend(POLICIES)
    settings = ic.config
    sections = ic.daemon_config.plugins
    if URI not in sections and OLD_URI in sections:
        settings = {**settings, **sections[OLD_URI]}
    try:
        interval = duration_seconds(settings.get("interval", DEFAULT_INTERVAL))
    except errdefs.InvalidArgument as exc:
        raise errdefs.InvalidArgument(f'plugins."{URI}".interval: {exc}') from exc
    if interval <= 0:  # containerd's default for a zero interval
        interval = duration_seconds(DEFAULT_INTERVAL)
    log.info("restart monitor: checking every %gs", interval)
    monitor = RestartMonitor(ic.get(plugin.METADATA), ic.get(plugin.RUNTIME_V2, "task"), interval)
    monitor.start()
    return monitor

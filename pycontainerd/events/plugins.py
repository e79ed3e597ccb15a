"""The event exchange plugin."""

from __future__ import annotations

from pycontainerd import plugin
from pycontainerd.events.exchange import Exchange


@plugin.register(plugin.EVENT, "exchange", required=True)
def init_exchange(ic: plugin.InitContext) -> Exchange:
    return Exchange()

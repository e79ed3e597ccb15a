"""The modules whose import registers the daemon's built-in plugins."""

from __future__ import annotations

import importlib

BUILTIN_PLUGIN_MODULES = (
    "pycontainerd.events.plugins",
    "pycontainerd.snapshots.plugins",
    "pycontainerd.metadata.plugins",
    "pycontainerd.diff.plugin",
    "pycontainerd.services.version",
    "pycontainerd.services.healthcheck",
    "pycontainerd.services.namespaces",
    "pycontainerd.services.content",
    "pycontainerd.services.images",
    "pycontainerd.services.containers",
    "pycontainerd.services.snapshots",
    "pycontainerd.services.diff",
    "pycontainerd.services.leases",
    "pycontainerd.services.events",
    "pycontainerd.services.introspection",
    "pycontainerd.transfer.services",
    "pycontainerd.sandbox.services",
    "pycontainerd.runtime.plugin",
    "pycontainerd.services.tasks",
    "pycontainerd.services.ttrpc_events",
    "pycontainerd.cri.plugin",
    "pycontainerd.restart.plugin",
)


def load_builtin_plugins() -> None:
    for name in BUILTIN_PLUGIN_MODULES:
        importlib.import_module(name)

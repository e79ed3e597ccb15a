"""The plugin registry: every store and service is a plugin with a type and an id.

Start-up order comes from the declared requirements (plugin types), and
`ctr plugins ls` reports what is registered here, including plugins whose
initialisation failed (with the error), as containerd does.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycontainerd import errdefs

# Plugin types, with containerd's names.
CONTENT = "io.containerd.content.v1"
SNAPSHOTTER = "io.containerd.snapshotter.v1"
METADATA = "io.containerd.metadata.v1"
DIFF = "io.containerd.differ.v1"
GC = "io.containerd.gc.v1"
EVENT = "io.containerd.event.v1"
LEASE = "io.containerd.lease.v1"
SERVICE = "io.containerd.service.v1"
GRPC = "io.containerd.grpc.v1"
RUNTIME_V2 = "io.containerd.runtime.v2"
TTRPC = "io.containerd.ttrpc.v1"

#: Mode of the metadata and task-state directories of plugins (containerd's).
PLUGIN_DIR_MODE = 0o711
INTERNAL = "io.containerd.internal.v1"

ALL_TYPES = "*"


class RequiredPluginFailed(errdefs.FailedPrecondition):
    """A plugin the daemon cannot serve without failed to load: start-up stops."""


class SkipPlugin(Exception):
    """Raised by an init function when the plugin cannot run on this host.

    The plugin is listed with the reason as its error, and start-up goes on.
    """


@dataclass
class InitContext:
    """What a plugin's init function is given."""

    root: Path  # <daemon root>/<type>.<id>, the plugin's own directory
    state: Path  # <daemon state>/<type>.<id>
    config: dict[str, Any]  # the plugin's section of the config, over its defaults
    daemon_config: Any  # pycontainerd.config.Config
    registry: PluginSet
    exports: dict[str, str] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    platforms: list[dict[str, str]] = field(default_factory=list)

    def get(self, plugin_type: str, plugin_id: str | None = None) -> Any:
        """An initialised plugin instance this plugin requires."""
        return self.registry.get(plugin_type, plugin_id)

    def get_all(self, plugin_type: str) -> dict[str, Any]:
        return self.registry.get_all(plugin_type)

    def make_dirs(self, *directories: Path) -> None:
        """Create the plugin's directories 0711, as containerd does (also when they exist):
        others may reach what is inside by its name, never list it."""
        for directory in directories:
            directory.mkdir(mode=PLUGIN_DIR_MODE, parents=True, exist_ok=True)
            os.chmod(directory, PLUGIN_DIR_MODE)


InitFunc = Callable[[InitContext], Awaitable[Any] | Any]


@dataclass
class Registration:
    type: str
    id: str
    init: InitFunc
    requires: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    #: Every service needs it: its failure stops start-up instead of leaving a
    #: daemon that answers UNIMPLEMENTED everywhere.
    required: bool = False

    @property
    def uri(self) -> str:
        return f"{self.type}.{self.id}"


@dataclass
class LoadedPlugin:
    """A registration after its init ran: the instance or the error."""

    registration: Registration
    instance: Any = None
    error: BaseException | None = None
    exports: dict[str, str] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    platforms: list[dict[str, str]] = field(default_factory=list)


log = logging.getLogger(__name__)

_REGISTRATIONS: list[Registration] = []


def register(
    plugin_type: str,
    plugin_id: str,
    *,
    requires: tuple[str, ...] = (),
    config: dict[str, Any] | None = None,
    required: bool = False,
) -> Callable[[InitFunc], InitFunc]:
    """Decorator registering an init function as a plugin (``required``: see Registration)."""

    def wrap(init: InitFunc) -> InitFunc:
        for existing in _REGISTRATIONS:
            if (existing.type, existing.id) == (plugin_type, plugin_id):
                raise ValueError(f"plugin {plugin_type}.{plugin_id} registered twice")
        _REGISTRATIONS.append(
            Registration(
                plugin_type, plugin_id, init, tuple(requires), dict(config or {}), required
            )
        )
        return init

    return wrap


def registrations() -> list[Registration]:
    return list(_REGISTRATIONS)


def ordered(regs: list[Registration]) -> list[Registration]:
    """Registrations sorted so that each comes after the types it requires.

    A plugin requiring "*" comes after every plugin not itself requiring "*".
    """
    by_type: dict[str, list[Registration]] = {}
    for reg in regs:
        by_type.setdefault(reg.type, []).append(reg)
    result: list[Registration] = []
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(reg: Registration) -> None:
        if reg.uri in done:
            return
        if reg.uri in visiting:
            raise ValueError(f"plugin dependency cycle through {reg.uri}")
        visiting.add(reg.uri)
        for required in reg.requires:
            if required == ALL_TYPES:
                continue
            for dep in by_type.get(required, []):
                visit(dep)
        visiting.discard(reg.uri)
        done.add(reg.uri)
        result.append(reg)

    for reg in regs:
        if ALL_TYPES not in reg.requires:
            visit(reg)
    for reg in regs:
        visit(reg)
    return result


class PluginSet:
    """The initialised plugins of one daemon, in start-up order."""

    def __init__(self) -> None:
        self.loaded: list[LoadedPlugin] = []

    def get(self, plugin_type: str, plugin_id: str | None = None) -> Any:
        for p in self.loaded:
            reg = p.registration
            if reg.type == plugin_type and (plugin_id is None or reg.id == plugin_id):
                if p.error is not None:
                    raise errdefs.FailedPrecondition(
                        f"plugin {reg.uri} failed to initialise: {p.error}"
                    )
                return p.instance
        wanted = plugin_type if plugin_id is None else f"{plugin_type}.{plugin_id}"
        raise errdefs.NotFound(f"no plugin {wanted}")

    def get_all(self, plugin_type: str) -> dict[str, Any]:
        return {
            p.registration.id: p.instance
            for p in self.loaded
            if p.registration.type == plugin_type and p.error is None
        }

    async def load(
        self,
        regs: list[Registration],
        make_context: Callable[[Registration], InitContext],
        disabled: set[str] | None = None,
        required: set[str] | None = None,
    ) -> None:
        """Initialise the registrations in dependency order.

        A failing plugin is recorded with its error; plugins that require its
        type still start and see the failure when they ask for it. A failing
        plugin that is required (by its registration, or named in ``required``
        as containerd's ``required_plugins``) raises RequiredPluginFailed.
        """
        disabled = disabled or set()
        required = required or set()
        for reg in ordered(regs):
            if reg.uri in disabled:
                continue
            ctx = make_context(reg)
            loaded = LoadedPlugin(reg)
            try:
                instance = reg.init(ctx)
                if inspect.isawaitable(instance):
                    instance = await instance
                loaded.instance = instance
            except SkipPlugin as exc:
                log.info("skipping plugin %s: %s", reg.uri, exc)
                loaded.error = exc
            except Exception as exc:  # containerd keeps going and reports it
                if reg.required or reg.uri in required:
                    raise RequiredPluginFailed(
                        f"failed to load plugin {reg.uri}, which the daemon needs: {exc}"
                    ) from exc
                log.error("failed to load plugin %s: %s", reg.uri, exc, exc_info=True)
                loaded.error = exc
            loaded.exports = ctx.exports
            loaded.capabilities = ctx.capabilities
            loaded.platforms = ctx.platforms
            self.loaded.append(loaded)
        working = {p.registration.uri for p in self.loaded if p.error is None}
        for uri in sorted(required - working):
            raise RequiredPluginFailed(f"required plugin {uri} was not loaded")

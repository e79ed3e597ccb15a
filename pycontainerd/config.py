"""The daemon's configuration: a TOML file in containerd's shape.

Only the keys we use are interpreted; per-plugin sections live under
`[plugins."<type>.<id>"]` and are handed to that plugin over its defaults.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycontainerd import errdefs
from pycontainerd.durations import go_duration_seconds

DEFAULT_ROOT = Path("/var/lib/pycontainerd")
DEFAULT_STATE = Path("/run/pycontainerd")
DEFAULT_ADDRESS = DEFAULT_STATE / "pycontainerd.sock"
DEFAULT_CONFIG_PATH = Path("/etc/pycontainerd/config.toml")
MAX_MESSAGE_SIZE = 16 << 20


@dataclass
class GrpcConfig:
    address: str = str(DEFAULT_ADDRESS)
    uid: int = 0
    gid: int = 0
    max_recv_message_size: int = MAX_MESSAGE_SIZE
    max_send_message_size: int = MAX_MESSAGE_SIZE


@dataclass
class Config:
    version: int = 2
    root: Path = DEFAULT_ROOT
    state: Path = DEFAULT_STATE
    grpc: GrpcConfig = field(default_factory=GrpcConfig)
    ttrpc_address: str = ""  # default: <grpc address>.ttrpc
    log_level: str = "info"
    disabled_plugins: list[str] = field(default_factory=list)
    required_plugins: list[str] = field(default_factory=list)
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ttrpc(self) -> str:
        return self.ttrpc_address or self.grpc.address + ".ttrpc"

    def plugin_config(self, uri: str, defaults: dict[str, Any]) -> dict[str, Any]:
        """A plugin's section over its defaults (unknown keys are kept)."""
        merged = dict(defaults)
        merged.update(self.plugins.get(uri, {}))
        return merged


def _expect(value: Any, kind: type | tuple[type, ...], key: str) -> Any:
    if not isinstance(value, kind):
        raise errdefs.InvalidArgument(f"config key {key!r}: expected {kind}, got {value!r}")
    return value


def number_setting(
    plugin_uri: str,
    settings: dict[str, Any],
    key: str,
    *,
    minimum: float,
    maximum: float | None = None,
) -> float:
    """A plugin's numeric setting within its bounds; InvalidArgument naming it otherwise."""
    value = settings.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise errdefs.InvalidArgument(
            f'plugins."{plugin_uri}".{key} must be a number {bounds}, got {value!r}'
        )
    return float(value)


def duration_seconds(value: Any) -> float:
    """A setting's Go duration ("250ms", "1m30s") or number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise errdefs.InvalidArgument(f"{value!r} is not a duration: use e.g. 250ms, 90s, 1h30m")
    return go_duration_seconds(value.strip())


def parse(text: str) -> Config:
    """Parse a config file's text; unknown top-level keys are ignored as containerd does."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise errdefs.InvalidArgument(f"config is not valid TOML: {exc}") from exc
    cfg = Config()
    if "version" in raw:
        cfg.version = _expect(raw["version"], int, "version")
        if cfg.version not in (1, 2):
            raise errdefs.InvalidArgument(f"config version {cfg.version} is not supported (use 2)")
    if "root" in raw:
        cfg.root = Path(_expect(raw["root"], str, "root"))
    if "state" in raw:
        cfg.state = Path(_expect(raw["state"], str, "state"))
    grpc_raw = _expect(raw.get("grpc", {}), dict, "grpc")
    for key in ("address", "uid", "gid", "max_recv_message_size", "max_send_message_size"):
        if key in grpc_raw:
            kind = str if key == "address" else int
            setattr(cfg.grpc, key, _expect(grpc_raw[key], kind, f"grpc.{key}"))
    ttrpc_raw = _expect(raw.get("ttrpc", {}), dict, "ttrpc")
    cfg.ttrpc_address = _expect(ttrpc_raw.get("address", ""), str, "ttrpc.address")
    debug_raw = _expect(raw.get("debug", {}), dict, "debug")
    cfg.log_level = _expect(debug_raw.get("level", "") or "info", str, "debug.level")
    cfg.disabled_plugins = list(_expect(raw.get("disabled_plugins", []), list, "disabled_plugins"))
    cfg.required_plugins = list(_expect(raw.get("required_plugins", []), list, "required_plugins"))
    plugins = _expect(raw.get("plugins", {}), dict, "plugins")
    cfg.plugins = {k: _expect(v, dict, f"plugins.{k}") for k, v in plugins.items()}
    return cfg


def load(path: Path | None) -> Config:
    """Load the config file; a missing default file means all defaults."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return Config()
        path = DEFAULT_CONFIG_PATH
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise errdefs.NotFound(f"config file {path} does not exist") from exc
    return parse(text)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(key)


def render(cfg: Config, plugin_defaults: dict[str, dict[str, Any]]) -> str:
    """The config as TOML, every plugin section filled with its defaults."""
    lines = [
        f"version = {cfg.version}",
        f"root = {_toml_value(str(cfg.root))}",
        f"state = {_toml_value(str(cfg.state))}",
        f"disabled_plugins = {_toml_value(cfg.disabled_plugins)}",
        f"required_plugins = {_toml_value(cfg.required_plugins)}",
        "",
        "[grpc]",
    ]
    for key in ("address", "uid", "gid", "max_recv_message_size", "max_send_message_size"):
        lines.append(f"  {key} = {_toml_value(getattr(cfg.grpc, key))}")
    lines += ["", "[ttrpc]", f"  address = {_toml_value(cfg.ttrpc_address)}"]
    lines += ["", "[debug]", f"  level = {_toml_value(cfg.log_level)}", "", "[plugins]"]
    for uri in sorted(plugin_defaults):
        section = cfg.plugin_config(uri, plugin_defaults[uri])
        lines.append(f"  [plugins.{_toml_value(uri)}]")
        for key, value in section.items():
            lines.append(f"    {_toml_key(key)} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"

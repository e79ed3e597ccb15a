"""The CRI plugin's settings, in containerd's ``[plugins."io.containerd.grpc.v1.cri"]`` shape."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from pycontainerd import errdefs

URI = "io.containerd.grpc.v1.cri"

DEFAULTS: dict[str, Any] = {
    "sandbox_image": "registry.k8s.io/pause:3.10",
    "stats_collect_period": 10,
    "enable_unprivileged_ports": True,
    "enable_unprivileged_icmp": True,
    # This host may lack CAP_SYS_RESOURCE: a negative oom_score_adj would fail, so
    # by default it is raised to the daemon's own (containerd's restrict mode).
    "restrict_oom_score_adj": True,
    "max_container_log_line_size": 16 * 1024,
    "cni": {"bin_dir": "/opt/cni/bin", "conf_dir": "/etc/cni/net.d", "max_conf_num": 1},
    "containerd": {
        "snapshotter": "overlayfs",
        "default_runtime_name": "runc",
        "runtimes": {
            "runc": {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": ""}},
            "crun": {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": "crun"}},
            "runsc": {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": "runsc"}},
        },
    },
    "registry": {"mirrors": {}, "configs": {}},
    # The streaming server (Exec/Attach/PortForward URLs); port "0" picks a free one.
    "stream_server_address": "127.0.0.1",
    "stream_server_port": "0",
    "stream_idle_timeout": "4h0m0s",
    "enable_tls_streaming": False,
    "disable_hugetlb_controller": True,
}


@dataclass(frozen=True)
class Runtime:
    """One entry of the runtime table: the task runtime and the OCI binary it runs."""

    name: str
    runtime_type: str
    binary_name: str = ""


@dataclass(frozen=True)
class Mirror:
    endpoints: tuple[str, ...]


@dataclass(frozen=True)
class RegistryHost:
    """``registry.configs.<host>``: credentials and TLS choice for one host."""

    username: str = ""
    password: str = ""
    insecure_skip_verify: bool = False
    plain_http: bool = False


@dataclass(frozen=True)
class CRIConfig:
    sandbox_image: str
    stats_collect_period: int
    enable_unprivileged_ports: bool
    enable_unprivileged_icmp: bool
    restrict_oom_score_adj: bool
    max_container_log_line_size: int
    cni_bin_dir: str
    cni_conf_dir: str
    cni_max_conf_num: int
    snapshotter: str
    default_runtime: str
    runtimes: dict[str, Runtime]
    mirrors: dict[str, Mirror] = field(default_factory=dict)
    registries: dict[str, RegistryHost] = field(default_factory=dict)
    stream_server_address: str = "127.0.0.1"
    stream_server_port: int = 0
    stream_idle_timeout: float = 4 * 3600.0
    disable_hugetlb_controller: bool = True

    def runtime(self, handler: str) -> Runtime:
        """The runtime for a pod's ``runtime_handler`` ("" is the default one)."""
        name = handler or self.default_runtime
        found = self.runtimes.get(name)
        if found is None:
            known = ", ".join(sorted(self.runtimes))
            raise errdefs.NotFound(
                f"no runtime for handler {name!r} in the CRI runtime table (known: {known})"
            )
        return found


def _get(section: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = section.get(key)
    if isinstance(value, bool) and kind is int or not isinstance(value, kind):
        raise errdefs.InvalidArgument(
            f'plugins."{URI}".{where}{key} must be {getattr(kind, "__name__", kind)}, got {value!r}'
        )
    return value


def _merged(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(defaults)
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "runtimes":
            out[key] = _merged(out[key], value)
        elif key == "runtimes" and isinstance(value, dict):
            out[key] = {**out.get(key, {}), **value}
        else:
            out[key] = value
    return out


def parse(section: dict[str, Any]) -> CRIConfig:
    """The plugin's settings over the defaults; InvalidArgument naming a bad key."""
    raw = _merged(DEFAULTS, section)
    cni = _get(raw, "cni", dict, "")
    ctd = _get(raw, "containerd", dict, "")
    registry = _get(raw, "registry", dict, "")
    runtimes: dict[str, Runtime] = {}
    for name, entry in _get(ctd, "runtimes", dict, "containerd.").items():
        if not isinstance(entry, dict):
            raise errdefs.InvalidArgument(f'plugins."{URI}".containerd.runtimes.{name} is a table')
        where = f"containerd.runtimes.{name}."
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            raise errdefs.InvalidArgument(f'plugins."{URI}".{where}options must be a table')
        runtimes[name] = Runtime(
            name,
            _get(entry, "runtime_type", str, where),
            str(options.get("BinaryName", "") or ""),
        )
    default_runtime = _get(ctd, "default_runtime_name", str, "containerd.")
    if default_runtime not in runtimes:
        raise errdefs.InvalidArgument(
            f'plugins."{URI}".containerd.default_runtime_name {default_runtime!r} '
            "is not in containerd.runtimes"
        )
    mirrors = {
        host: Mirror(tuple(str(e) for e in (m or {}).get("endpoint", [])))
        for host, m in _get(registry, "mirrors", dict, "registry.").items()
    }
    hosts: dict[str, RegistryHost] = {}
    for host, entry in _get(registry, "configs", dict, "registry.").items():
        auth = (entry or {}).get("auth") or {}
        tls = (entry or {}).get("tls") or {}
        hosts[host] = RegistryHost(
            username=str(auth.get("username", "")),
            password=str(auth.get("password", "")),
            insecure_skip_verify=bool(tls.get("insecure_skip_verify", False)),
            plain_http=bool((entry or {}).get("plain_http", False)),
        )
    line_size = _get(raw, "max_container_log_line_size", int, "")
    if line_size == 0 or line_size < -1:
        raise errdefs.InvalidArgument(
            f'plugins."{URI}".max_container_log_line_size must be > 0 or -1 (no limit)'
        )
    port_text = _get(raw, "stream_server_port", str, "")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise errdefs.InvalidArgument(
            f'plugins."{URI}".stream_server_port must be a port number, got {port_text!r}'
        )
    if _get(raw, "enable_tls_streaming", bool, ""):
        raise errdefs.InvalidArgument(
            f'plugins."{URI}".enable_tls_streaming: pycontainerd streams over loopback '
            "without TLS only"
        )
    return CRIConfig(
        sandbox_image=_get(raw, "sandbox_image", str, ""),
        stats_collect_period=_get(raw, "stats_collect_period", int, ""),
        enable_unprivileged_ports=_get(raw, "enable_unprivileged_ports", bool, ""),
        enable_unprivileged_icmp=_get(raw, "enable_unprivileged_icmp", bool, ""),
        restrict_oom_score_adj=_get(raw, "restrict_oom_score_adj", bool, ""),
        max_container_log_line_size=line_size,
        cni_bin_dir=_get(cni, "bin_dir", str, "cni."),
        cni_conf_dir=_get(cni, "conf_dir", str, "cni."),
        cni_max_conf_num=_get(cni, "max_conf_num", int, "cni."),
        snapshotter=_get(ctd, "snapshotter", str, "containerd."),
        default_runtime=default_runtime,
        runtimes=runtimes,
        mirrors=mirrors,
        registries=hosts,
        stream_server_address=_get(raw, "stream_server_address", str, ""),
        stream_server_port=int(port_text),
        disable_hugetlb_controller=_get(raw, "disable_hugetlb_controller", bool, ""),
        stream_idle_timeout=go_duration(_get(raw, "stream_idle_timeout", str, "")),
    )


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str) -> float:
    """Seconds in a Go duration string ("4h0m0s", "30s", "1.5h")."""
    match = re.fullmatch(r"((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+|0", text)
    if not match:
        raise errdefs.InvalidArgument(
            f'plugins."{URI}".stream_idle_timeout must be a duration like "4h0m0s", got {text!r}'
        )
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    return sum(float(n) * _UNITS[u] for n, u in parts)

"""Registry host configuration from a hosts directory (containerd's ``certs.d`` layout).

``<host_dir>/<registry host>/hosts.toml`` (or ``<host_dir>/_default/hosts.toml``)
names where a registry is served::

    server = "https://registry.example"

    [host."http://127.0.0.1:5000"]
      capabilities = ["pull", "resolve"]

The first ``[host]`` entry that can resolve (or, without one, ``server``)
is used; its scheme decides plain HTTP. Mirrors tried in turn, TLS settings
and extra headers are not supported: a file that asks for them is refused
rather than half-honoured.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pycontainerd import errdefs

DEFAULT_DIR = "_default"
_UNSUPPORTED_KEYS = ("ca", "client", "skip_verify", "header", "override_path")


@dataclass(frozen=True)
class HostEndpoint:
    """Where a registry is served: ``host`` (with port) and whether over plain HTTP."""

    host: str
    plain_http: bool


def _directory_name(domain: str) -> str:
    # containerd names docker.io's directory after the domain clients use.
    return domain


def _endpoint(url: str, where: Path) -> HostEndpoint:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise errdefs.InvalidArgument(f"{where}: {url!r} is not an http(s) registry URL")
    if parts.path.rstrip("/") not in ("", "/v2"):
        raise errdefs.NotImplemented_(
            f"{where}: registry URLs with a path ({url!r}) are not supported"
        )
    return HostEndpoint(parts.netloc, parts.scheme == "http")


def load_endpoint(host_dir: str | Path, domain: str) -> HostEndpoint | None:
    """The endpoint ``host_dir`` configures for ``domain``, or None when it has no file for it."""
    root = Path(host_dir)
    for name in (_directory_name(domain), DEFAULT_DIR):
        path = root / name / "hosts.toml"
        try:
            config = tomllib.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise errdefs.InvalidArgument(f"cannot read {path}: {exc}") from exc
        hosts = config.get("host", {})
        if not isinstance(hosts, dict):
            raise errdefs.InvalidArgument(f"{path}: [host] must be a table of URLs")
        for url, settings in hosts.items():
            settings = settings if isinstance(settings, dict) else {}
            unsupported = [k for k in _UNSUPPORTED_KEYS if k in settings]
            if unsupported:
                raise errdefs.NotImplemented_(
                    f"{path}: host {url!r} sets {', '.join(unsupported)}, which pycontainerd "
                    "does not support"
                )
            if "resolve" in settings.get("capabilities", ["pull", "resolve", "push"]):
                return _endpoint(url, path)
        server = config.get("server")
        if isinstance(server, str) and server:
            return _endpoint(server, path)
        if name == DEFAULT_DIR:
            return None
    return None

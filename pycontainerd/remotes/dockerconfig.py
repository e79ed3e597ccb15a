"""Credentials from the Docker CLI config file (``docker login`` writes it).

Reads ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``, section
``auths``: each entry holds a base64 ``auth`` (``user:secret``) or separate
``username``/``password``, or an ``identitytoken``. Credential helpers
(``credsStore``/``credHelpers``) are not run.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.remotes.auth import CredentialsFunc

# Docker Hub is stored under its legacy v1 URL; all its spellings mean one registry.
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


def docker_config_path() -> Path:
    """Where the Docker CLI keeps its config: ``$DOCKER_CONFIG`` or ``~/.docker``."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(Path.home(), ".docker")
    return Path(directory) / "config.json"


def normalize_registry_key(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``http://h:5000/x`` -> ``h:5000``."""
    host = key.split("://", 1)[-1].split("/", 1)[0].lower()
    return "docker.io" if host in _DOCKER_HUB_ALIASES else host


def _decode_entry(key: str, entry: dict) -> tuple[str, str] | None:
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(entry["auth"], validate=False).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidArgument(
                f"docker config: auth for {key!r} is not base64 of user:password; "
                "run `docker login` again"
            ) from exc
        username, sep, secret = decoded.partition(":")
        if not sep:
            raise InvalidArgument(f"docker config: auth for {key!r} lacks the ':' separator")
        return username, secret
    if entry.get("identitytoken"):
        return "", entry["identitytoken"]
    if entry.get("username"):
        return entry["username"], entry.get("password", "")
    return None


def load_docker_auths(path: Path | None = None) -> dict[str, tuple[str, str]]:
    """All credentials in the config file, keyed by normalized registry host."""
    path = path or docker_config_path()
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read docker config {path}: {exc}") from exc
    auths = document.get("auths") if isinstance(document, dict) else None
    result: dict[str, tuple[str, str]] = {}
    for key, entry in (auths or {}).items():
        if isinstance(entry, dict) and (creds := _decode_entry(key, entry)) is not None:
            result[normalize_registry_key(key)] = creds
    return result


def docker_config_credentials(path: Path | None = None) -> CredentialsFunc:
    """A credentials callback reading the Docker config file on each call.

    Reading each time picks up a ``docker login`` done while we run.
    """

    def lookup(host: str) -> tuple[str, str] | None:
        return load_docker_auths(path).get(normalize_registry_key(host))

    return lookup

"""Apply an OCI image's config (Entrypoint, Cmd, Env, WorkingDir, User) to a spec."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.oci.process import merge_env
from pycontainerd.oci.spec import DEFAULT_PATH_ENV, Spec, SpecOpt, process_of
from pycontainerd.oci.users import with_supplementary_groups, with_user

ImageConfig = Mapping[str, Any] | bytes | str
"""The image config blob (JSON bytes/str) or its decoded document."""


def _config_section(image_config: ImageConfig) -> Mapping[str, Any]:
    """The ``config`` object of an image config document (may be absent or null)."""
    if isinstance(image_config, bytes | str):
        try:
            document = json.loads(image_config)
        except ValueError as exc:
            raise InvalidArgument(f"image config is not valid JSON: {exc}") from exc
    else:
        document = image_config
    if not isinstance(document, Mapping):
        raise InvalidArgument("image config must be a JSON object")
    section = document.get("config") or {}
    if not isinstance(section, Mapping):
        raise InvalidArgument("image config's 'config' must be a JSON object")
    return section


def _string_list(section: Mapping[str, Any], key: str) -> list[str]:
    value = section.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"image config's {key} must be a list of strings")
    return value


def with_image_config(
    image_config: ImageConfig,
    rootfs: str | os.PathLike[str] | None = None,
    args: Sequence[str] | None = None,
) -> SpecOpt:
    """Take the process from the image, like containerd's ``WithImageConfigArgs``.

    - args: Entrypoint + Cmd, where non-empty ``args`` replace Cmd.
    - env: the image Env (or the default PATH if it has none), then the spec's
      own variables on top, so options applied before this one still win. The
      default spec's PATH is not an override: an image's PATH beats it.
    - cwd: WorkingDir, or "/".
    - user: User resolved in ``rootfs`` (see ``with_user``); without a User the
      uid/gid stay, and with a ``rootfs`` its /etc/group adds their groups.
    """
    section = _config_section(image_config)
    entrypoint = _string_list(section, "Entrypoint")
    cmd = list(args) if args else _string_list(section, "Cmd")
    image_env = _string_list(section, "Env")
    working_dir = section.get("WorkingDir") or "/"
    user = section.get("User") or ""
    if not isinstance(working_dir, str) or not isinstance(user, str):
        raise InvalidArgument("image config's WorkingDir and User must be strings")

    def opt(spec: Spec) -> None:
        process = process_of(spec)
        overrides = [e for e in process.get("env", []) if e != DEFAULT_PATH_ENV]
        process["env"] = merge_env(image_env or [DEFAULT_PATH_ENV], overrides)
        process["args"] = entrypoint + cmd
        process["cwd"] = working_dir
        if user:
            with_user(user, rootfs)(spec)
        elif rootfs is not None:
            with_supplementary_groups(rootfs)(spec)

    return opt

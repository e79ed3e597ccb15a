"""Applying an image config (Entrypoint, Cmd, Env, WorkingDir, User)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pycontainerd.errdefs import FailedPrecondition, InvalidArgument
from pycontainerd.oci import (
    DEFAULT_PATH_ENV,
    generate_spec,
    with_env,
    with_image_config,
    with_uid_gid,
)

IMAGE_CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "Entrypoint": ["/docker-entrypoint.sh"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "Env": ["PATH=/opt/nginx/bin:/usr/bin", "NGINX_VERSION=1.25"],
        "WorkingDir": "/srv",
        "User": "app",
    },
    "rootfs": {"type": "layers", "diff_ids": []},
}


def _spec(*opts) -> dict:
    return generate_spec("default", "c1", *opts)


def test_full_config(rootfs: Path) -> None:
    process = _spec(with_image_config(IMAGE_CONFIG, rootfs))["process"]
    assert process["args"] == ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
    assert process["env"] == ["PATH=/opt/nginx/bin:/usr/bin", "NGINX_VERSION=1.25"]
    assert process["cwd"] == "/srv"
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10, 29]}


def test_user_args_replace_cmd_not_entrypoint(rootfs: Path) -> None:
    process = _spec(with_image_config(IMAGE_CONFIG, rootfs, args=["-v"]))["process"]
    assert process["args"] == ["/docker-entrypoint.sh", "-v"]


def test_accepts_json_bytes_and_str(rootfs: Path) -> None:
    raw = json.dumps(IMAGE_CONFIG)
    for blob in (raw, raw.encode()):
        assert _spec(with_image_config(blob, rootfs))["process"]["cwd"] == "/srv"


def test_env_set_before_wins_over_image(rootfs: Path) -> None:
    spec = _spec(
        with_env(["NGINX_VERSION=custom", "EXTRA=1"]), with_image_config(IMAGE_CONFIG, rootfs)
    )
    assert spec["process"]["env"] == [
        "PATH=/opt/nginx/bin:/usr/bin",
        "NGINX_VERSION=custom",
        "EXTRA=1",
    ]


def test_env_set_after_wins_too(rootfs: Path) -> None:
    spec = _spec(with_image_config(IMAGE_CONFIG, rootfs), with_env(["PATH=/x"]))
    assert spec["process"]["env"][0] == "PATH=/x"


def test_explicit_path_override_before_image_wins() -> None:
    config = {"config": {"Env": ["PATH=/image"], "Cmd": ["sh"]}}
    spec = _spec(with_env(["PATH=/mine"]), with_image_config(config))
    assert spec["process"]["env"] == ["PATH=/mine"]


def test_minimal_config_uses_defaults() -> None:
    spec = _spec(with_uid_gid(5, 6), with_image_config({"config": {"Cmd": ["/bin/sh"]}}))
    process = spec["process"]
    assert process["args"] == ["/bin/sh"]
    assert process["env"] == [DEFAULT_PATH_ENV]
    assert process["cwd"] == "/"
    assert process["user"] == {"uid": 5, "gid": 6, "additionalGids": [6]}


def test_no_config_section_at_all() -> None:
    spec = _spec(with_image_config({"config": None}, args=["/bin/true"]))
    assert spec["process"]["args"] == ["/bin/true"]


def test_root_groups_from_rootfs_when_no_user(rootfs: Path) -> None:
    config = {"config": {"Cmd": ["sh"]}}
    user = _spec(with_image_config(config, rootfs))["process"]["user"]
    assert user == {"uid": 0, "gid": 0, "additionalGids": [0, 10]}


def test_named_user_needs_rootfs() -> None:
    with pytest.raises(FailedPrecondition, match="rootfs"):
        _spec(with_image_config(IMAGE_CONFIG))


@pytest.mark.parametrize(
    "bad",
    [
        b"not json",
        "[1, 2]",
        {"config": "nope"},
        {"config": {"Cmd": "sh"}},
        {"config": {"Env": [1]}},
        {"config": {"User": 5}},
    ],
)
def test_malformed_configs(bad) -> None:
    with pytest.raises(InvalidArgument):
        with_image_config(bad)

"""pyctr's argument forms and its completion table."""

from __future__ import annotations

import argparse
import signal

import pytest

from ctr.commands.completion import bash_script, command_words
from ctr.commands.tasks import parse_signal
from ctr.container_flags import parse_mount, parse_size
from ctr.main import build_parser
from pycontainerd import errdefs
from pycontainerd.client.archive import image_name
from pycontainerd.remotes.manifest import Descriptor


def test_sizes() -> None:
    assert parse_size("1048576") == 1 << 20
    assert parse_size("256m") == 256 << 20
    assert parse_size("1GiB") == 1 << 30
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("lots")


def test_mounts() -> None:
    assert parse_mount("type=bind,src=/a,dst=/b,options=rbind:ro") == {
        "type": "bind",
        "source": "/a",
        "destination": "/b",
        "options": ["rbind", "ro"],
    }
    assert parse_mount("src=/a,dst=/b")["options"] == ["rbind"]
    with pytest.raises(errdefs.InvalidArgument, match="dst"):
        parse_mount("src=/a")
    with pytest.raises(errdefs.InvalidArgument, match="key=value"):
        parse_mount("/a:/b")


def test_signals() -> None:
    assert parse_signal("SIGKILL") == signal.SIGKILL
    assert parse_signal("term") == signal.SIGTERM
    assert parse_signal("9") == 9
    with pytest.raises(errdefs.InvalidArgument, match="unknown signal"):
        parse_signal("SIGNOPE")


def test_completion_covers_the_whole_tree() -> None:
    words = dict(command_words(build_parser()))
    assert {"images", "tasks", "run", "snapshots", "completion"} <= set(words["pyctr"])
    assert "exec" in words["pyctr tasks"] and "--exec-id" in words["pyctr tasks exec"]
    assert "--snapshotter" in words["pyctr snapshots"]
    assert "complete -o default -F _pyctr pyctr" in bash_script(build_parser())


def test_archive_image_names() -> None:
    def entry(**annotations: str) -> Descriptor:
        return Descriptor(
            "application/vnd.oci.image.manifest.v1+json", "sha256:" + "a" * 64, 1, annotations
        )

    assert image_name(entry(**{"io.containerd.image.name": "x/y:1"})) == "x/y:1"
    assert image_name(entry(**{"org.opencontainers.image.ref.name": "v1"})) == ""
    assert image_name(entry(**{"org.opencontainers.image.ref.name": "v1"}), "x/y") == "x/y:v1"

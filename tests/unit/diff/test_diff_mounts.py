"""How the differ reads snapshot mounts: overlay layers, the fast path, read-only forms."""

from __future__ import annotations

from pycontainerd.diff.mounts import (
    OverlayLayers,
    layer_directories,
    overlay_layers,
    readonly,
    writable_overlay,
)
from pycontainerd.mount import Mount

ACTIVE_OVERLAY = Mount(
    "overlay",
    "overlay",
    options=["index=off", "workdir=/s/3/work", "upperdir=/s/3/fs", "lowerdir=/s/2/fs:/s/1/fs"],
)
VIEW_OVERLAY = Mount("overlay", "overlay", options=["index=off", "lowerdir=/s/2/fs:/s/1/fs"])
BIND = Mount("bind", "/s/1/fs", options=["rw", "rbind"])


def test_overlay_layers_reads_upper_and_lowers_nearest_first() -> None:
    assert overlay_layers(ACTIVE_OVERLAY) == OverlayLayers("/s/3/fs", ("/s/2/fs", "/s/1/fs"))
    assert overlay_layers(VIEW_OVERLAY) == OverlayLayers("", ("/s/2/fs", "/s/1/fs"))
    assert overlay_layers(BIND) is None


def test_only_a_single_overlay_with_an_upper_dir_is_written_directly() -> None:
    assert writable_overlay([ACTIVE_OVERLAY]) == overlay_layers(ACTIVE_OVERLAY)
    assert writable_overlay([VIEW_OVERLAY]) is None
    assert writable_overlay([BIND]) is None
    assert writable_overlay([ACTIVE_OVERLAY, BIND]) is None
    assert writable_overlay([]) is None


def test_layer_directories_of_read_only_trees() -> None:
    assert layer_directories([]) == ()
    assert layer_directories([BIND]) == ("/s/1/fs",)
    assert layer_directories([VIEW_OVERLAY]) == ("/s/2/fs", "/s/1/fs")
    assert layer_directories([ACTIVE_OVERLAY]) is None
    assert layer_directories([BIND, BIND]) is None
    assert layer_directories([Mount("tmpfs", "tmpfs")]) is None


def test_readonly_bind_replaces_rw() -> None:
    (mount,) = readonly([BIND])
    assert mount.type == "bind" and mount.source == "/s/1/fs"
    assert mount.options == ["rbind", "ro"]


def test_readonly_overlay_reads_the_upper_dir_as_a_lower_layer() -> None:
    (mount,) = readonly([ACTIVE_OVERLAY])
    assert mount.options == ["index=off", "lowerdir=/s/3/fs:/s/2/fs:/s/1/fs", "ro"]
    (view,) = readonly([VIEW_OVERLAY])
    assert view.options == ["index=off", "lowerdir=/s/2/fs:/s/1/fs", "ro"]


def test_readonly_leaves_the_input_unchanged() -> None:
    original = list(ACTIVE_OVERLAY.options)
    readonly([ACTIVE_OVERLAY])
    assert ACTIVE_OVERLAY.options == original

"""Reading snapshot mounts the way the differ needs them.

Two questions only: is this an overlay whose upper directory can be written
(or read) directly, and what does the same mount look like read-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pycontainerd.mount import Mount

_UPPERDIR = "upperdir="
_LOWERDIR = "lowerdir="
_WORKDIR = "workdir="
_WRITABLE_OPTIONS = ("rw", "ro")


@dataclass(frozen=True)
class OverlayLayers:
    """The directories of one overlay mount: ``upper`` ("" when none), lowers nearest first."""

    upper: str
    lowers: tuple[str, ...]


def overlay_layers(mount: Mount) -> OverlayLayers | None:
    """The layers of ``mount`` when it is an overlay, else None."""
    if mount.type != "overlay":
        return None
    upper = ""
    lowers: tuple[str, ...] = ()
    for option in mount.options:
        if option.startswith(_UPPERDIR):
            upper = option[len(_UPPERDIR) :]
        elif option.startswith(_LOWERDIR):
            lowers = tuple(d for d in option[len(_LOWERDIR) :].split(":") if d)
    return OverlayLayers(upper, lowers)


def writable_overlay(mounts: Sequence[Mount]) -> OverlayLayers | None:
    """The layers when ``mounts`` is one overlay with an upper directory.

    Such a snapshot can be changed by writing into its upper directory without
    mounting anything (whiteouts then take overlayfs's own form).
    """
    if len(mounts) != 1:
        return None
    layers = overlay_layers(mounts[0])
    if layers is None or not layers.upper:
        return None
    return layers


def layer_directories(mounts: Sequence[Mount]) -> tuple[str, ...] | None:
    """The read-only layers a mount list shows, nearest first, when that is knowable.

    No mount is an empty tree; a bind mount is one directory; an overlay
    without an upper directory is its lower directories. Anything else is None.
    """
    if not mounts:
        return ()
    if len(mounts) != 1:
        return None
    mount = mounts[0]
    if mount.type == "bind":
        return (mount.source,)
    layers = overlay_layers(mount)
    if layers is None or layers.upper:
        return None
    return layers.lowers


def readonly(mounts: Sequence[Mount]) -> list[Mount]:
    """The same trees, mounted read-only.

    An overlay with an upper directory becomes one whose upper directory is its
    nearest lower layer: mounting an upper directory a second time (the snapshot
    may be in use by a container) is refused or unsafe, reading it is not.
    """
    return [_readonly(m) for m in mounts]


def _readonly(mount: Mount) -> Mount:
    options = [o for o in mount.options if o not in _WRITABLE_OPTIONS]
    layers = overlay_layers(mount)
    if layers is not None and layers.upper:
        lowers = ":".join((layers.upper, *layers.lowers))
        kept = [o for o in options if not o.startswith((_UPPERDIR, _WORKDIR, _LOWERDIR))]
        options = [*kept, _LOWERDIR + lowers]
    options.append("ro")
    return Mount(type=mount.type, source=mount.source, target=mount.target, options=options)

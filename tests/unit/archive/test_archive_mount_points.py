"""Removals during a layer apply stop at mount points: nothing of a mounted file system goes.

A whiteout, an opaque directory or an entry replacing a directory may remove
a whole tree; when a directory in that tree is a mount point (a tmpfs, or a
bind mount of the same file system), the apply must refuse with a clear error
before deleting anything on the mounted file system. Mounts are made by the
test inside its temp dir (as root) and removed whatever happens.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from archive_testlib import LayerBuilder

from pycontainerd import errdefs
from pycontainerd.archive import apply_layer


def _mount(args: list[str]) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture(params=["tmpfs", "bind"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """``target/data/mnt`` is a mount point holding ``keep/precious`` (and ``top``)."""
    root = tmp_path / "target"
    mount_point = root / "data" / "mnt"
    mount_point.mkdir(parents=True)
    (root / "data" / "before").write_text("on the target's own file system")
    if request.param == "tmpfs":
        _mount(["-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)])
    else:  # the same file system as the target: only the mount id tells them apart
        source = tmp_path / "elsewhere"
        source.mkdir()
        _mount(["--bind", str(source), str(mount_point)])
    try:
        (mount_point / "keep").mkdir()
        (mount_point / "keep" / "precious").write_text("on the mounted file system")
        (mount_point / "top").write_text("also mounted")
        yield root
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)


def _mounted_files(target: Path) -> list[str]:
    mount_point = target / "data" / "mnt"
    return sorted(str(p.relative_to(mount_point)) for p in mount_point.rglob("*"))


ALL_MOUNTED = ["keep", "keep/precious", "top"]


def _apply(target: Path, layer: bytes) -> None:
    apply_layer(target, io.BytesIO(layer), whiteouts="native")


@pytest.mark.parametrize(
    "layer",
    [
        pytest.param(LayerBuilder().file(".wh.data").bytes(), id="whiteout-of-a-parent"),
        pytest.param(LayerBuilder().file("data/.wh.mnt").bytes(), id="whiteout-of-the-mount"),
        pytest.param(LayerBuilder().file("data").bytes(), id="file-replacing-a-parent"),
        pytest.param(LayerBuilder().file("data/mnt").bytes(), id="file-replacing-the-mount"),
        pytest.param(LayerBuilder().file("data/.wh..wh..opq").bytes(), id="opaque-parent"),
    ],
)
def test_removal_refuses_to_cross_into_a_mounted_file_system(target: Path, layer: bytes) -> None:
    with pytest.raises(errdefs.FailedPrecondition, match="mount point") as refused:
        _apply(target, layer)
    assert "data/mnt" in str(refused.value)
    assert _mounted_files(target) == ALL_MOUNTED


@pytest.mark.parametrize(
    "layer",
    [
        pytest.param(LayerBuilder().file("data/mnt/keep/.wh.precious").bytes(), id="whiteout"),
        pytest.param(LayerBuilder().file("data/mnt/.wh..wh..opq").bytes(), id="opaque"),
        pytest.param(LayerBuilder().file("data/mnt/keep").bytes(), id="file-over-a-dir"),
    ],
)
def test_removal_inside_a_mounted_file_system_is_refused(target: Path, layer: bytes) -> None:
    with pytest.raises(errdefs.FailedPrecondition, match="mount point"):
        _apply(target, layer)
    assert _mounted_files(target) == ALL_MOUNTED


def test_removals_on_the_target_itself_still_work(target: Path) -> None:
    _apply(target, LayerBuilder().file("data/.wh.before").bytes())
    assert not (target / "data" / "before").exists()
    assert _mounted_files(target) == ALL_MOUNTED

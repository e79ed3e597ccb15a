"""Tests of pycontainerd.mount: option parsing, real mounts, long overlay options."""

from __future__ import annotations

import errno
import os

import pytest

from pycontainerd import errdefs, mount
from pycontainerd.mount import Mount


def test_parse_options_splits_flags_propagation_and_data() -> None:
    parsed = mount.parse_options(
        ["ro", "nosuid", "nodev", "rbind", "rprivate", "lowerdir=/a:/b", "size=10m"]
    )
    assert parsed.flags == (
        mount.MS_RDONLY | mount.MS_NOSUID | mount.MS_NODEV | mount.MS_BIND | mount.MS_REC
    )
    assert parsed.propagation == mount.MS_PRIVATE | mount.MS_REC
    assert parsed.data == "lowerdir=/a:/b,size=10m"


def test_parse_options_later_option_wins() -> None:
    assert mount.parse_options(["ro", "rw"]).flags == 0
    assert mount.parse_options(["noexec", "exec", "remount"]).flags == mount.MS_REMOUNT


def test_loop_option_is_refused_with_advice() -> None:
    with pytest.raises(errdefs.NotImplemented_, match="loop"):
        mount.parse_options(["loop"])


def test_compact_overlay_options_uses_parent_of_common_path() -> None:
    options = ["index=off", "lowerdir=/r/snapshots/12/fs:/r/snapshots/13/fs", "upperdir=/u"]
    directory, compacted = mount.compact_overlay_options(options)
    assert directory == "/r/snapshots"
    assert compacted == ["index=off", "lowerdir=12/fs:13/fs", "upperdir=/u"]


def test_compact_overlay_options_leaves_single_lowerdir_alone() -> None:
    options = ["lowerdir=/r/snapshots/1/fs"]
    assert mount.compact_overlay_options(options) == ("", options)


def test_read_only_bind_mount_refuses_writes(workdir: str, mounted) -> None:
    source = os.path.join(workdir, "src")
    os.mkdir(source)
    with open(os.path.join(source, "file"), "w") as f:
        f.write("data")
    target = mounted([Mount(type="bind", source=source, options=["ro", "rbind"])])
    with open(os.path.join(target, "file")) as f:
        assert f.read() == "data"
    with pytest.raises(OSError) as info:
        os.mkdir(os.path.join(target, "new"))
    assert info.value.errno == errno.EROFS


def test_remount_makes_a_bind_read_only(workdir: str, mounted) -> None:
    source = os.path.join(workdir, "src")
    os.mkdir(source)
    target = mounted([Mount(type="bind", source=source, options=["rbind"])])
    os.mkdir(os.path.join(target, "writable"))
    Mount(type="", source="", options=["remount", "bind", "ro"]).mount(target)
    with pytest.raises(OSError) as info:
        os.mkdir(os.path.join(target, "now-read-only"))
    assert info.value.errno == errno.EROFS


def test_failed_mount_names_the_mount_and_errno(root_only: None, workdir: str) -> None:
    target = os.path.join(workdir, "target")
    os.mkdir(target)
    missing = os.path.join(workdir, "missing")
    with pytest.raises(errdefs.NotFound, match=r"Errno 2.*") as info:
        mount.mount_all([Mount(type="bind", source=missing, options=["rbind"])], target)
    assert missing in str(info.value)
    assert info.value.errno == errno.ENOENT
    assert mount.mount_points_under(target) == []


def test_mount_all_rolls_back_when_a_later_mount_fails(root_only: None, workdir: str) -> None:
    source = os.path.join(workdir, "src")
    target = os.path.join(workdir, "target")
    os.mkdir(source)
    os.mkdir(target)
    good = Mount(type="bind", source=source, options=["rbind"])
    bad = Mount(type="bind", source=os.path.join(workdir, "missing"), options=["rbind"])
    with pytest.raises(errdefs.NotFound):
        mount.mount_all([good, bad], target)
    assert mount.mount_points_under(target) == []


def test_unmount_all_removes_stacked_and_nested_mounts(root_only: None, workdir: str) -> None:
    source = os.path.join(workdir, "src")
    target = os.path.join(workdir, "target")
    os.makedirs(os.path.join(source, "sub"))
    os.mkdir(target)
    bind = Mount(type="bind", source=source, options=["bind"])
    mount.mount_all([bind, bind], target)
    bind.mount(os.path.join(target, "sub"))
    assert len(mount.mount_points_under(target)) == 3
    mount.unmount_all(target)
    assert mount.mount_points_under(target) == []


def test_unmount_recursive_and_not_mounted_is_quiet(root_only: None, workdir: str) -> None:
    source = os.path.join(workdir, "src")
    target = os.path.join(workdir, "target")
    os.makedirs(os.path.join(source, "sub"))
    os.mkdir(target)
    bind = Mount(type="bind", source=source, options=["bind"])
    bind.mount(target)
    bind.mount(os.path.join(target, "sub"))
    mount.unmount(target, recursive=True)
    assert mount.mount_points_under(target) == []
    mount.unmount(target)  # nothing mounted: no error


def test_temp_mount_cleans_up_when_the_body_fails(root_only: None, workdir: str) -> None:
    source = os.path.join(workdir, "src")
    os.mkdir(source)
    seen = []
    with (
        pytest.raises(RuntimeError),
        mount.temp_mount([Mount(type="bind", source=source, options=["rbind"])], workdir) as p,
    ):
        seen.append(p)
        assert mount.mount_points_under(p) == [p]
        raise RuntimeError("body failed")
    assert not os.path.exists(seen[0])


def _long_lower_layers(workdir: str, count: int) -> list[str]:
    """`count` layers under a long common path, each holding one file."""
    base = os.path.join(workdir, "a-rather-long-directory-name-to-stress-the-option-size")
    layers = []
    for i in range(count):
        layer = os.path.join(base, "snapshots", str(i), "fs")
        os.makedirs(layer)
        with open(os.path.join(layer, f"file-{i}"), "w") as f:
            f.write(str(i))
        layers.append(layer)
    return layers


def test_overlay_with_options_beyond_a_page_mounts_via_relative_lowerdirs(
    workdir: str, mounted
) -> None:
    layers = _long_lower_layers(workdir, 150)
    options = ["lowerdir=" + ":".join(reversed(layers))]
    assert len(options[0]) > mount.PAGE_SIZE
    target = mounted([Mount(type="overlay", source="overlay", options=options)])
    assert len([n for n in os.listdir(target) if n.startswith("file-")]) == 150
    with open(os.path.join(target, "file-0")) as f:
        assert f.read() == "0"


def test_overlay_options_too_long_even_compacted_are_refused(root_only: None, workdir: str) -> None:
    target = os.path.join(workdir, "target")
    os.mkdir(target)
    lowerdirs = [os.path.join(workdir, "x" * 200, f"{i:0100d}") for i in range(60)]
    bad = Mount(type="overlay", source="overlay", options=["lowerdir=" + ":".join(lowerdirs)])
    with pytest.raises(errdefs.InvalidArgument, match="kernel limit"):
        bad.mount(target)

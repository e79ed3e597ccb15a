"""write_diff / write_diff_from_overlay_upper: what they emit, and apply round trips."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from archive_testlib import sha256

from pycontainerd import errdefs
from pycontainerd.archive import apply_layer, write_diff, write_diff_from_overlay_upper
from tests.support.trees import describe_tree

CAPABILITY = bytes([1, 0, 0, 2, 0, 0x20, 0, 0]) + bytes(12)
CP = shutil.which("cp")


def copy_tree(source: Path, destination: Path) -> None:
    """An exact copy (owners, modes, times, xattrs, hard links, devices)."""
    assert CP is not None, "cp (coreutils) is needed"
    subprocess.run([CP, "-a", str(source), str(destination)], check=True)


def build_lower(root: Path) -> None:
    (root / "etc/sub").mkdir(parents=True)
    (root / "var/lib/gone").mkdir(parents=True)
    (root / "etc/conf").write_text("key=value\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    (root / "etc/sub/deep").write_text("deep")
    (root / "var/lib/gone/f").write_text("x")
    (root / "to_dir").write_text("file now, dir later")
    (root / "to_file").mkdir()
    (root / "to_file/child").write_text("c")
    (root / "bin").mkdir()
    (root / "bin/ping").write_bytes(b"\x7fELF ping")
    os.chmod(root / "bin/ping", 0o4755)
    os.setxattr(root / "bin/ping", "security.capability", CAPABILITY)
    (root / "bin/a").write_text("linked")
    os.link(root / "bin/a", root / "bin/b")
    (root / "link").symlink_to("etc/conf")
    os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mkfifo(root / "fifo")


def change_upper(root: Path) -> None:
    (root / "etc/conf").write_text("key=other\n")
    os.chmod(root / "etc/hosts", 0o600)
    os.chown(root / "etc/sub/deep", 1000, 1000)
    os.setxattr(root / "etc/sub", "user.note", b"\x00\xffbinary")
    os.unlink(root / "bin/b")
    shutil.rmtree(root / "var/lib/gone")
    os.unlink(root / "to_dir")
    (root / "to_dir").mkdir(mode=0o711)
    (root / "to_dir/inner").write_text("inner")
    shutil.rmtree(root / "to_file")
    (root / "to_file").write_text("was a dir")
    os.unlink(root / "link")
    (root / "link").symlink_to("etc/hosts")
    os.lchown(root / "link", 5, 6)
    os.link(root / "etc/hosts", root / "etc/hosts.link")  # new link to an unchanged file
    (root / "new/nested").mkdir(parents=True)
    (root / "new/nested/one").write_text("pair")
    os.link(root / "new/nested/one", root / "new/two")
    os.mknod(root / "new/loop0", 0o600 | stat.S_IFBLK, os.makedev(7, 0))
    (root / "new/setgid").mkdir()
    os.chmod(root / "new/setgid", 0o2770)
    os.chmod(root / "new", 0o1777)


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    build_lower(lower)
    copy_tree(lower, upper)
    change_upper(upper)
    return lower, upper


def tar_names(blob: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
        return tar.getnames()


def test_write_diff_then_apply_reproduces_upper(tmp_path: Path, trees) -> None:
    lower, upper = trees
    out = io.BytesIO()
    result = write_diff(lower, upper, out)
    applied = tmp_path / "applied"
    copy_tree(lower, applied)
    applied_result = apply_layer(applied, io.BytesIO(out.getvalue()), whiteouts="native")

    assert applied_result.diff_id == result.diff_id
    assert result.digest == sha256(out.getvalue())
    assert result.size == len(out.getvalue())
    assert describe_tree(applied, with_mtime=True) == describe_tree(upper, with_mtime=True)


def test_diff_holds_only_changes(trees) -> None:
    lower, upper = trees
    out = io.BytesIO()
    write_diff(lower, upper, out, compression="none")
    names = tar_names(out.getvalue())
    assert "bin/.wh.b" in names and "var/lib/.wh.gone" in names
    assert "bin/ping" not in names and "etc/sub/deep" in names
    assert "etc/hosts.link" in names and "etc/hosts" in names  # re-linked pair
    assert names.index("etc") < names.index("etc/conf")  # parents come first
    assert "null" not in names and "fifo" not in names


def test_output_is_deterministic_and_compression_keeps_the_diff_id(trees) -> None:
    lower, upper = trees
    results = {}
    for compression in ("none", "gzip", "zstd", "gzip"):
        out = io.BytesIO()
        results.setdefault(compression, []).append(
            write_diff(lower, upper, out, compression=compression)
        )
    plain = results["none"][0]
    assert plain.digest == plain.diff_id
    assert plain.media_type == "application/vnd.oci.image.layer.v1.tar"
    assert results["zstd"][0].media_type.endswith("+zstd")
    assert {r.diff_id for rs in results.values() for r in rs} == {plain.diff_id}
    assert results["gzip"][0] == results["gzip"][1]


def test_same_size_content_change_with_truncated_times_is_seen(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    for root, text in ((lower, "aaaa"), (upper, "bbbb")):
        (root / "f").write_text(text)
        os.utime(root / "f", ns=(1_700_000_000_000_000_000,) * 2)
    out = io.BytesIO()
    write_diff(lower, upper, out, compression="none")
    assert tar_names(out.getvalue()) == ["f"]


def build_overlay_upper(upper: Path, lower: Path) -> None:
    (lower / "etc").mkdir(parents=True)
    (lower / "etc/old").write_text("old")
    (lower / "etc/keep").write_text("keep")
    (lower / "opq/sub").mkdir(parents=True)
    (lower / "opq/y").write_text("y")
    (lower / "opq/sub/z").write_text("z")
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/new").write_text("new")
    os.mknod(upper / "etc/old", stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(upper / "ghost", stat.S_IFCHR, os.makedev(0, 0))  # hides nothing
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    (upper / "opq/x").write_text("x")


def test_overlay_upper_diff(tmp_path: Path) -> None:
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    build_overlay_upper(upper, lower)
    out = io.BytesIO()
    write_diff_from_overlay_upper(upper, lower, out, compression="zstd")
    blob = out.getvalue()
    names = tar_names(_unzstd(blob))
    assert "etc/.wh.old" in names and "opq/.wh..wh..opq" in names
    assert not any("ghost" in name for name in names)

    merged = tmp_path / "merged"
    copy_tree(lower, merged)
    apply_layer(merged, io.BytesIO(blob), whiteouts="native")
    assert sorted(os.listdir(merged / "etc")) == ["keep", "new"]
    assert os.listdir(merged / "opq") == ["x"]

    again = tmp_path / "again"
    again.mkdir()
    apply_layer(again, io.BytesIO(blob), whiteouts="overlay")
    assert os.getxattr(again / "opq", "trusted.overlay.opaque") == b"y"
    os.unlink(upper / "ghost")
    assert describe_tree(again) == describe_tree(upper)


def test_overlay_redirects_cannot_be_expressed(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "moved").mkdir(parents=True)
    os.setxattr(upper / "moved", "trusted.overlay.redirect", b"/orig")
    with pytest.raises(errdefs.NotImplemented_, match="redirect"):
        write_diff_from_overlay_upper(upper, None, io.BytesIO())


def _unzstd(blob: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(blob)


def _mount_overlay(lower: Path, upper: Path, work: Path, merged: Path) -> None:
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    try:
        subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"this machine cannot mount overlayfs (needs root and the module): {exc}")


def test_overlay_apply_matches_native_apply_under_a_real_overlay_mount(
    tmp_path: Path, trees
) -> None:
    """The two whiteout modes must mean the same tree once overlayfs merges the upper."""
    lower, upper = trees
    out = io.BytesIO()
    write_diff(lower, upper, out)
    native = tmp_path / "native"
    copy_tree(lower, native)
    apply_layer(native, io.BytesIO(out.getvalue()), whiteouts="native")

    layer_upper, work, merged = tmp_path / "ovl-upper", tmp_path / "work", tmp_path / "merged"
    for path in (layer_upper, work, merged):
        path.mkdir()
    apply_layer(layer_upper, io.BytesIO(out.getvalue()), whiteouts="overlay")
    _mount_overlay(lower, layer_upper, work, merged)
    try:
        assert describe_tree(merged) == describe_tree(native)
    finally:
        subprocess.run(["umount", str(merged)], check=True)

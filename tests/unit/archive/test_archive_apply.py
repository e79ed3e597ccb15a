"""apply_layer: entry kinds, metadata, whiteouts, replacement, digests and errors."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from archive_testlib import MTIME, LayerBuilder, compress, sha256

from pycontainerd import errdefs
from pycontainerd.archive import apply_layer

CAPABILITY = bytes([1, 0, 0, 2, 0, 0x20, 0, 0]) + bytes(12)  # cap_net_bind_service, v2


def apply_bytes(target: Path, data: bytes, whiteouts: str = "native", **kwargs):
    return apply_layer(target, io.BytesIO(data), whiteouts=whiteouts, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "target"
    path.mkdir()
    return path


def test_every_entry_kind_keeps_its_metadata(target: Path) -> None:
    layer = (
        LayerBuilder()
        .dir("etc", mode=0o750, uid=10, gid=20, mtime=MTIME - 100)
        .file("etc/conf", b"x=1\n", mode=0o640, uid=1000, gid=1001, mtime=MTIME - 5)
        .file("usr/bin/ping", b"\x7fELF", mode=0o4755, xattrs={"security.capability": CAPABILITY})
        .file("etc/tagged", b"t", xattrs={"user.origin": b"\xff\x00binary"})
        .dir("tmp", mode=0o1777)
        .dir("shared", mode=0o2775, gid=50)
        .symlink("etc/link", "conf", uid=7, gid=8, mtime=MTIME - 9)
        .hardlink("etc/conf.hard", "etc/conf")
        .device("dev/null", tarfile.CHRTYPE, 1, 3, mode=0o666)
        .device("dev/loop0", tarfile.BLKTYPE, 7, 0)
        .fifo("run/fifo", mode=0o620)
        .bytes()
    )
    apply_bytes(target, layer)

    etc = os.lstat(target / "etc")
    assert (stat.S_IMODE(etc.st_mode), etc.st_uid, etc.st_gid) == (0o750, 10, 20)
    assert etc.st_mtime == MTIME - 100  # set after etc/conf etc. were written into it
    conf = os.lstat(target / "etc/conf")
    assert (target / "etc/conf").read_bytes() == b"x=1\n"
    assert (stat.S_IMODE(conf.st_mode), conf.st_uid, conf.st_gid) == (0o640, 1000, 1001)
    assert conf.st_mtime == MTIME - 5
    assert conf.st_nlink == 2
    assert os.lstat(target / "etc/conf.hard").st_ino == conf.st_ino
    ping = os.lstat(target / "usr/bin/ping")
    assert stat.S_IMODE(ping.st_mode) == 0o4755  # setuid survives the chown
    assert os.getxattr(target / "usr/bin/ping", "security.capability") == CAPABILITY
    assert os.getxattr(target / "etc/tagged", "user.origin") == b"\xff\x00binary"
    assert stat.S_IMODE(os.lstat(target / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.lstat(target / "shared").st_mode) == 0o2775
    link = os.lstat(target / "etc/link")
    assert stat.S_ISLNK(link.st_mode) and os.readlink(target / "etc/link") == "conf"
    assert (link.st_uid, link.st_gid, link.st_mtime) == (7, 8, MTIME - 9)
    null = os.lstat(target / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    assert stat.S_ISBLK(os.lstat(target / "dev/loop0").st_mode)
    fifo = os.lstat(target / "run/fifo")
    assert stat.S_ISFIFO(fifo.st_mode) and stat.S_IMODE(fifo.st_mode) == 0o620
    assert stat.S_IMODE(os.lstat(target / "usr").st_mode) == 0o755  # implicit parent


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_long_names_in_every_format(target: Path, fmt: int) -> None:
    deep = "/".join(["d" * 40] * 3)  # with the base over 100 chars: ustar uses its prefix
    long_base = "f" * 150 if fmt != tarfile.USTAR_FORMAT else "f" * 90
    layer = LayerBuilder(fmt).file(f"{deep}/{long_base}", b"deep")
    if fmt != tarfile.USTAR_FORMAT:  # long link names: PAX linkpath / GNU 'K'
        layer.symlink("s" * 120, f"{deep}/{long_base}")
        layer.hardlink("h" * 120, f"{deep}/{long_base}")
    apply_bytes(target, layer.bytes())
    assert (target / deep / long_base).read_bytes() == b"deep"
    if fmt != tarfile.USTAR_FORMAT:
        assert (target / ("s" * 120)).read_bytes() == b"deep"
        assert (target / ("h" * 120)).read_bytes() == b"deep"


def test_pax_fractional_mtime_and_unicode_name(target: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("naïve-名前")
        info.pax_headers = {"mtime": "1700000000.25"}
        tar.addfile(info)
    apply_bytes(target, buffer.getvalue())
    assert os.lstat(target / "naïve-名前").st_mtime_ns == 1_700_000_000_250_000_000


def test_trusted_xattrs_from_the_archive_are_ignored(target: Path) -> None:
    layer = LayerBuilder().file("f", b"", xattrs={"trusted.overlay.redirect": b"/etc"}).bytes()
    apply_bytes(target, layer, whiteouts="overlay")
    assert "trusted.overlay.redirect" not in os.listxattr(target / "f")


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_diff_id_is_the_digest_of_the_uncompressed_tar(tmp_path: Path, compression: str) -> None:
    tar = LayerBuilder().file("a", b"a" * 5000).dir("d").file("d/b", os.urandom(3000)).bytes()
    tar += bytes(4096)  # trailing zero blocks past the end marker are part of the digest
    blob = compress(tar, compression)
    for detected in (None, compression):  # autodetect and declared
        target = tmp_path / f"t-{detected}"
        target.mkdir()
        result = apply_bytes(target, blob, compression=detected)
        assert result.diff_id == sha256(tar)
        assert result.size == len(tar)
        assert (target / "a").read_bytes() == b"a" * 5000


def test_multi_member_gzip_is_one_stream(target: Path) -> None:
    tar = LayerBuilder().file("a", b"hello" * 1000).bytes()
    blob = compress(tar[:1000], "gzip") + compress(tar[1000:], "gzip")
    assert apply_bytes(target, blob).diff_id == sha256(tar)
    assert (target / "a").read_bytes() == b"hello" * 1000


def test_replacing_entries_of_another_type(target: Path) -> None:
    (target / "was_dir").mkdir()
    (target / "was_dir/child").write_text("old")
    (target / "was_file").write_text("old")
    (target / "was_link").symlink_to("was_file")
    (target / "kept").mkdir(mode=0o700)
    (target / "kept/old_child").write_text("stays")
    layer = (
        LayerBuilder()
        .file("was_dir", b"now a file")
        .dir("was_file")
        .file("was_link", b"now a file too")
        .dir("kept", mode=0o755, uid=3)
        .bytes()
    )
    apply_bytes(target, layer)
    assert (target / "was_dir").read_bytes() == b"now a file"
    assert (target / "was_file").is_dir()
    assert not (target / "was_link").is_symlink()
    assert (target / "was_link").read_bytes() == b"now a file too"
    assert (target / "kept/old_child").read_text() == "stays"
    kept = os.lstat(target / "kept")
    assert (stat.S_IMODE(kept.st_mode), kept.st_uid) == (0o755, 3)


def test_a_file_over_an_existing_file_breaks_its_hard_link(target: Path) -> None:
    (target / "a").write_text("old")
    os.link(target / "a", target / "b")
    apply_bytes(target, LayerBuilder().file("a", b"new").bytes())
    assert (target / "a").read_text() == "new"
    assert (target / "b").read_text() == "old"


def make_lower(target: Path) -> None:
    (target / "etc/sub").mkdir(parents=True)
    (target / "etc/old").write_text("old")
    (target / "etc/sub/deep").write_text("deep")
    (target / "gone").write_text("x")
    (target / "gone_dir").mkdir()
    (target / "gone_dir/f").write_text("x")


def test_native_whiteouts_delete(target: Path) -> None:
    make_lower(target)
    layer = LayerBuilder().file(".wh.gone").file(".wh.gone_dir").file(".wh.never_existed")
    apply_bytes(target, layer.bytes())
    assert sorted(os.listdir(target)) == ["etc"]


@pytest.mark.parametrize("marker_first", [True, False])
def test_native_opaque_dir_keeps_only_this_layers_entries(target: Path, marker_first) -> None:
    make_lower(target)
    layer = LayerBuilder()
    if marker_first:
        layer.file("etc/.wh..wh..opq")
    layer.file("etc/new", b"new").file("etc/sub/added", b"added")
    if not marker_first:
        layer.file("etc/.wh..wh..opq")
    apply_bytes(target, layer.bytes())
    assert sorted(os.listdir(target / "etc")) == ["new", "sub"]
    assert os.listdir(target / "etc/sub") == ["added"]


def test_a_whiteout_does_not_hide_its_own_layer(target: Path) -> None:
    layer = LayerBuilder().file("f", b"mine").file(".wh.f").bytes()
    apply_bytes(target, layer)
    assert (target / "f").read_bytes() == b"mine"


def test_overlay_whiteouts_become_devices_and_xattrs(target: Path) -> None:
    layer = (
        LayerBuilder()
        .file("etc/.wh.old")
        .file("opaque/.wh..wh..opq")
        .file("opaque/new", b"n")
        .file(".wh..wh.plnk")  # aufs bookkeeping: ignored
        .bytes()
    )
    apply_bytes(target, layer, whiteouts="overlay")
    old = os.lstat(target / "etc/old")
    assert stat.S_ISCHR(old.st_mode) and old.st_rdev == 0
    assert os.getxattr(target / "opaque", "trusted.overlay.opaque") == b"y"
    assert (target / "opaque/new").read_bytes() == b"n"
    assert sorted(os.listdir(target)) == ["etc", "opaque"]


def test_devices_can_be_refused(target: Path) -> None:
    layer = LayerBuilder().device("dev/null", tarfile.CHRTYPE, 1, 3).bytes()
    with pytest.raises(errdefs.InvalidArgument, match="device"):
        apply_bytes(target, layer, allow_devices=False)
    assert not (target / "dev/null").exists()
    apply_bytes(target, LayerBuilder().fifo("fifo").bytes(), allow_devices=False)


def test_unknown_whiteout_mode(target: Path) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="whiteout mode"):
        apply_bytes(target, LayerBuilder().bytes(), whiteouts="aufs")


def test_missing_target(tmp_path: Path) -> None:
    with pytest.raises(errdefs.NotFound):
        apply_bytes(tmp_path / "nope", LayerBuilder().bytes())


BIG = os.urandom(200_000)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (LayerBuilder().file("big", BIG).bytes()[:100_000], "truncated"),  # inside data
        (LayerBuilder().file("a", b"1").file("b", b"2").bytes()[:1200], "truncated"),  # header
        (compress(LayerBuilder().file("big", BIG).bytes(), "gzip")[:-30], "truncated"),
        (compress(LayerBuilder().file("big", BIG).bytes(), "zstd")[:-30], "truncated"),
        (compress(LayerBuilder().file("big", BIG).bytes(), "gzip") + b"junk", "corrupt"),
        (b"\x1f\x8b" + os.urandom(300), "corrupt|truncated"),
        (b"not a tar at all".ljust(512, b"!"), "checksum"),
    ],
    ids=[
        "tar-in-data",
        "tar-in-header",
        "gzip",
        "zstd",
        "gzip-trailing-junk",
        "gzip-corrupt",
        "not-tar",
    ],
)
def test_broken_streams_are_invalid_arguments(target: Path, blob: bytes, message: str) -> None:
    with pytest.raises(errdefs.InvalidArgument, match=message):
        apply_bytes(target, blob)


def test_unsupported_entry_type(target: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("sparse")
        info.type = tarfile.GNUTYPE_SPARSE
        tar.addfile(info)
    with pytest.raises(errdefs.InvalidArgument, match="unsupported tar entry type"):
        apply_bytes(target, buffer.getvalue())

"""A layer extracted on its own and settled onto its parents equals the overlay apply.

The ordinary overlay apply writes the layer into an empty upper directory with
the lower layers at hand; the isolated extraction has no lower layers until it
is settled. Both must leave the same upper directory, or settling must refuse.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from archive_testlib import LayerBuilder

from pycontainerd import errdefs
from pycontainerd.archive import apply_layer
from pycontainerd.archive.isolated import extract_isolated, settle_implied_dirs
from pycontainerd.archive.whiteouts import OVERLAY_OPAQUE_XATTR
from tests.support.trees import describe_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts and owners need root")


def make_dir(path: Path, mode: int, uid: int = 0, gid: int = 0) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def mode_and_owner(path: Path) -> tuple[int, int, int]:
    info = os.lstat(path)
    return stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid


def lower_tree(root: Path) -> Path:
    """A parent layer: directories with their own owners and modes, files, a symlink."""
    make_dir(root / "srv", 0o750, 1000, 1000)
    make_dir(root / "srv" / "data", 0o700, 1000, 1001)
    make_dir(root / "opq" / "keep", 0o755)
    (root / "opq" / "old.txt").write_text("old")
    make_dir(root / "gone", 0o755)
    (root / "gone" / "f").write_text("f")
    (root / "file.txt").write_text("lower")
    return root


def tricky_layer() -> bytes:
    return (
        LayerBuilder()
        .file("srv/data/new.txt", b"implied srv and srv/data")
        .file("fresh/deep/f", b"implied, no lower has them")
        .file(".wh.file.txt")
        .file(".wh.gone")
        .file("opq/.wh..wh..opq")
        .file("opq/new.txt", b"new")
        .file("late/x", b"implied first")
        .dir("late", mode=0o700, uid=5, gid=5)  # then listed: its own metadata wins
        .file("flip/child", b"implied dir flip")
        .file("flip", b"then replaced by a file")
        .file("links/target", b"t")
        .hardlink("links/hard", "links/target")
        .symlink("links/soft", "target")
        .bytes()
    )


def ordinary(upper: Path, lowers: list[Path], layer: bytes) -> None:
    upper.mkdir()
    apply_layer(upper, io.BytesIO(layer), whiteouts="overlay", parents=lowers)


def isolated(upper: Path, lowers: list[Path], layer: bytes) -> bool:
    upper.mkdir()
    result = extract_isolated(upper, io.BytesIO(layer))
    return settle_implied_dirs(upper, lowers, result.implied_dirs)


def test_settled_extraction_equals_the_overlay_apply(tmp_path: Path) -> None:
    lower = lower_tree(tmp_path / "lower")
    layer = tricky_layer()

    ordinary(tmp_path / "a", [lower], layer)
    assert isolated(tmp_path / "b", [lower], layer)

    expected = describe_tree(tmp_path / "a")
    assert describe_tree(tmp_path / "b") == expected
    # The cases the comparison is about really are in it.
    assert expected["srv"][1:4] == (0o750, 1000, 1000)
    assert expected["srv/data"][1:4] == (0o700, 1000, 1001)
    assert expected["fresh"][1:4] == (0o755, 0, 0)
    assert expected["late"][1:4] == (0o700, 5, 5)
    assert stat.S_ISCHR(expected["gone"][0]) and stat.S_ISCHR(expected["file.txt"][0])
    assert stat.S_ISREG(expected["flip"][0])
    assert os.getxattr(tmp_path / "b" / "opq", OVERLAY_OPAQUE_XATTR) == b"y"
    assert expected["links/target"][-1] == "links/hard"  # one inode


def test_extraction_names_only_the_directories_it_implied(tmp_path: Path) -> None:
    (tmp_path / "up").mkdir()
    result = extract_isolated(tmp_path / "up", io.BytesIO(tricky_layer()))

    assert result.implied_dirs == {
        ("srv",),
        ("srv", "data"),
        ("fresh",),
        ("fresh", "deep"),
        ("links",),
        ("opq",),  # made for its opaque marker
    }  # not late (listed later) nor flip (replaced by a file later)


def test_implied_directories_stay_the_callers_until_settled(tmp_path: Path) -> None:
    up = tmp_path / "up"
    up.mkdir()
    extract_isolated(up, io.BytesIO(LayerBuilder().file("srv/f", b"").bytes()))
    assert mode_and_owner(up / "srv") == (0o755, 0, 0)

    assert settle_implied_dirs(up, [lower_tree(tmp_path / "lower")], [("srv",)])

    assert mode_and_owner(up / "srv") == (0o750, 1000, 1000)


def test_the_nearest_parent_decides(tmp_path: Path) -> None:
    base, middle = lower_tree(tmp_path / "base"), tmp_path / "middle"
    make_dir(middle / "srv", 0o1777, 33, 33)
    layer = LayerBuilder().file("srv/data/f", b"").bytes()

    ordinary(tmp_path / "a", [middle, base], layer)
    assert isolated(tmp_path / "b", [middle, base], layer)

    assert describe_tree(tmp_path / "b") == describe_tree(tmp_path / "a")
    assert mode_and_owner(tmp_path / "b" / "srv") == (0o1777, 33, 33)


@pytest.mark.parametrize(
    "obstacle",
    ["symlink to a directory", "file", "whiteout", "symlink above"],
)
def test_a_non_directory_in_the_parents_refuses_to_settle(tmp_path: Path, obstacle: str) -> None:
    lower = tmp_path / "lower"
    make_dir(lower / "real", 0o750, 1000, 1000)
    path = ("lnk", "sub") if obstacle == "symlink above" else ("lnk",)
    if obstacle.startswith("symlink"):
        (lower / "lnk").symlink_to("real")
    elif obstacle == "file":
        (lower / "lnk").write_text("not a directory")
    else:
        os.mknod(lower / "lnk", stat.S_IFCHR, os.makedev(0, 0))
    up = tmp_path / "up"
    up.mkdir()
    extract_isolated(up, io.BytesIO(LayerBuilder().file("/".join((*path, "f")), b"").bytes()))
    before = describe_tree(up)

    assert not settle_implied_dirs(up, [lower], [path[:1], path])

    assert describe_tree(up) == before  # refused before changing anything


def test_a_hard_link_to_a_parents_file_fails_like_the_overlay_apply(tmp_path: Path) -> None:
    lower = lower_tree(tmp_path / "lower")
    layer = LayerBuilder().hardlink("again.txt", "file.txt").bytes()

    with pytest.raises(errdefs.InvalidArgument, match="does not exist") as ordinary_error:
        ordinary(tmp_path / "a", [lower], layer)
    (tmp_path / "b").mkdir()
    with pytest.raises(errdefs.InvalidArgument) as isolated_error:
        extract_isolated(tmp_path / "b", io.BytesIO(layer))

    assert str(isolated_error.value) == str(ordinary_error.value)


def test_settling_skips_what_a_later_entry_replaced(tmp_path: Path) -> None:
    lower = lower_tree(tmp_path / "lower")
    up = tmp_path / "up"
    up.mkdir()
    (up / "srv").symlink_to("elsewhere")

    assert settle_implied_dirs(up, [lower], [("srv",), ("srv", "data")])

    assert (up / "srv").is_symlink()

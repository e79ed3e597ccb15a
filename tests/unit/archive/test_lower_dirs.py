"""Overlay apply: directories a layer implies take mode and owner from the lower layers."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from archive_testlib import LayerBuilder

from pycontainerd.archive import apply_layer


def apply_over(upper: Path, lowers: list[Path], layer: bytes) -> None:
    apply_layer(upper, io.BytesIO(layer), whiteouts="overlay", parents=lowers)


def mode_and_owner(path: Path) -> tuple[int, int, int]:
    info = os.lstat(path)
    return stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid


def make_dir(path: Path, mode: int, uid: int = 0, gid: int = 0) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def test_implied_directories_copy_the_nearest_lower(tmp_path: Path) -> None:
    base, middle, upper = tmp_path / "base", tmp_path / "middle", tmp_path / "upper"
    make_dir(base / "srv", 0o750, 1000, 1000)
    make_dir(base / "srv" / "data", 0o700, 1000, 1000)
    make_dir(middle / "srv", 0o1777, 33, 33)  # nearer: wins for srv, not for srv/data
    upper.mkdir()

    apply_over(upper, [middle, base], LayerBuilder().file("srv/data/new.txt", b"x").bytes())

    assert mode_and_owner(upper / "srv") == (0o1777, 33, 33)
    assert mode_and_owner(upper / "srv" / "data") == (0o700, 1000, 1000)
    assert (upper / "srv" / "data" / "new.txt").read_bytes() == b"x"


def test_setgid_survives_the_owner_change(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    make_dir(lower / "shared", 0o2775, 0, 50)
    upper.mkdir()

    apply_over(upper, [lower], LayerBuilder().file("shared/f", b"").bytes())

    assert mode_and_owner(upper / "shared") == (0o2775, 0, 50)


def test_directories_no_lower_has_are_0755_root(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    make_dir(lower / "etc", 0o700)
    (lower / "opt").write_text("a file, not a directory")
    upper.mkdir()

    layer = LayerBuilder().file("new/deep/f", b"").file("opt/f", b"").bytes()
    apply_over(upper, [lower], layer)

    assert mode_and_owner(upper / "new") == (0o755, 0, 0)
    assert mode_and_owner(upper / "new" / "deep") == (0o755, 0, 0)
    assert mode_and_owner(upper / "opt") == (0o755, 0, 0)


def test_listed_directories_keep_their_own_metadata(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    make_dir(lower / "app", 0o700, 1000, 1000)
    upper.mkdir()

    apply_over(upper, [lower], LayerBuilder().dir("app", mode=0o755).file("app/f", b"").bytes())

    assert mode_and_owner(upper / "app") == (0o755, 0, 0)


def test_symlinks_in_a_lower_resolve_inside_it(tmp_path: Path) -> None:
    lower, upper, outside = tmp_path / "lower", tmp_path / "upper", tmp_path / "outside"
    make_dir(outside / "etc", 0o700, 7, 7)  # must never be consulted
    make_dir(lower / "usr" / "lib", 0o750, 2, 2)
    lower.joinpath("lib").symlink_to("usr/lib")
    lower.joinpath("escape").symlink_to("../outside")
    upper.mkdir()

    layer = LayerBuilder().file("lib/f", b"").file("escape/etc/f", b"").bytes()
    apply_over(upper, [lower], layer)

    assert mode_and_owner(upper / "lib") == (0o750, 2, 2)
    assert mode_and_owner(upper / "escape" / "etc") == (0o755, 0, 0)

"""Hostile layers: nothing outside the target may be written, chmod-ed, chowned or deleted.

Each case runs against a target with a sentinel directory beside it; after the
apply (refused or not), everything outside the target must be exactly as before.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from archive_testlib import LayerBuilder, snapshot_outside

from pycontainerd import errdefs
from pycontainerd.archive import apply_layer


@dataclass
class Scene:
    tmp_path: Path
    target: Path
    sentinel: Path  # a directory next to the target, with a file "secret" in it

    def apply(self, layer: bytes, whiteouts: str = "native") -> None:
        apply_layer(self.target, io.BytesIO(layer), whiteouts=whiteouts)  # type: ignore[arg-type]


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    target = tmp_path / "target"
    target.mkdir()
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret").write_text("do not touch")
    os.chmod(sentinel / "secret", 0o600)
    before = snapshot_outside(tmp_path, target)
    yield Scene(tmp_path, target, sentinel)
    assert snapshot_outside(tmp_path, target) == before, "something outside the target changed"


MODES = ["native", "overlay"]


@pytest.mark.parametrize("whiteouts", MODES)
def test_absolute_names_are_made_relative(scene: Scene, whiteouts: str) -> None:
    secret = str(scene.sentinel / "secret")
    layer = LayerBuilder().file(secret, b"pwned", mode=0o777).file("/abs", b"a").bytes()
    scene.apply(layer, whiteouts)
    assert (scene.target / secret.lstrip("/")).read_bytes() == b"pwned"
    assert (scene.target / "abs").read_bytes() == b"a"


@pytest.mark.parametrize("name", ["../sentinel/secret", "a/../../sentinel/secret", "../evil"])
def test_dotdot_names_are_refused(scene: Scene, name: str) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="escapes"):
        scene.apply(LayerBuilder().file(name, b"pwned").bytes())


@pytest.mark.parametrize("whiteouts", MODES)
@pytest.mark.parametrize("link", ["absolute", "../..", "../../sentinel", "loop"])
def test_writes_never_go_through_a_symlink(scene: Scene, whiteouts: str, link: str) -> None:
    target_text = {"absolute": str(scene.sentinel), "loop": "link"}.get(link, link)
    layer = (
        LayerBuilder()
        .symlink("link", target_text)  # creating it is fine: it is data
        .file("link/secret", b"pwned", mode=0o777)
        .dir("link/newdir", mode=0o777)
        .symlink("link/secret2", "/etc/passwd")
        .bytes()
    )
    if link == "loop":
        with pytest.raises(errdefs.InvalidArgument, match="symbolic links"):
            scene.apply(layer, whiteouts)
        return
    scene.apply(layer, whiteouts)
    assert os.readlink(scene.target / "link") == target_text


def test_symlink_replaced_by_a_directory_midway(scene: Scene) -> None:
    layer = (
        LayerBuilder()
        .symlink("d", str(scene.sentinel))
        .file("d/secret", b"pwned")  # through the symlink, resolved inside the target
        .dir("d", mode=0o700)  # replaces the symlink, does not chmod the sentinel
        .file("d/secret", b"inside")
        .symlink("d", str(scene.sentinel))  # and back: replaces the directory tree
        .file("d/other", b"pwned")
        .bytes()
    )
    scene.apply(layer)
    assert (scene.target / "d").is_symlink()
    # The symlink resolves as if the target were "/": both writes through it
    # landed in the target's own copy of the sentinel's path.
    inside = scene.target / str(scene.sentinel).lstrip("/")
    assert (inside / "secret").read_bytes() == b"pwned"
    assert (inside / "other").read_bytes() == b"pwned"


def test_a_file_entry_over_a_symlink_replaces_the_link(scene: Scene) -> None:
    (scene.target / "l").symlink_to(scene.sentinel / "secret")
    scene.apply(LayerBuilder().file("l", b"pwned", mode=0o777, uid=4242).bytes())
    assert not (scene.target / "l").is_symlink()


@pytest.mark.parametrize(
    "linkname", ["../sentinel/secret", "a/../../sentinel/secret", "/../sentinel/secret"]
)
def test_hardlinks_out_of_the_target_are_refused(scene: Scene, linkname: str) -> None:
    with pytest.raises(errdefs.InvalidArgument):
        scene.apply(LayerBuilder().hardlink("h", linkname).bytes())


@pytest.mark.parametrize("link", ["../sentinel", "absolute"])
def test_hardlinks_through_an_escaping_symlink_are_refused(scene: Scene, link: str) -> None:
    target_text = str(scene.sentinel) if link == "absolute" else link
    layer = LayerBuilder().symlink("s", target_text).hardlink("h", "s/secret").bytes()
    with pytest.raises(errdefs.InvalidArgument):
        scene.apply(layer)
    assert not (scene.target / "h").exists()


def test_hardlink_to_a_symlink_links_the_symlink_itself(scene: Scene) -> None:
    layer = LayerBuilder().symlink("s", str(scene.sentinel / "secret")).hardlink("h", "s").bytes()
    scene.apply(layer)
    assert os.readlink(scene.target / "h") == str(scene.sentinel / "secret")


@pytest.mark.parametrize("whiteouts", MODES)
@pytest.mark.parametrize("link", ["absolute", "../sentinel", "../.."])
def test_whiteouts_never_go_through_a_symlink(scene: Scene, whiteouts: str, link: str) -> None:
    target_text = str(scene.sentinel) if link == "absolute" else link
    layer = (
        LayerBuilder()
        .symlink("link", target_text)
        .file("link/.wh.secret")
        .file("link/.wh..wh..opq")
        .bytes()
    )
    scene.apply(layer, whiteouts)


@pytest.mark.parametrize("whiteouts", MODES)
@pytest.mark.parametrize("name", [".wh..", "sub/.wh.."])
def test_whiteout_of_dotdot_is_refused(scene: Scene, whiteouts: str, name: str) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="whiteout"):
        scene.apply(LayerBuilder().file(name).bytes(), whiteouts)


def test_whiteout_of_an_escaping_symlink_removes_only_the_link(scene: Scene) -> None:
    (scene.target / "link").symlink_to(scene.sentinel)
    scene.apply(LayerBuilder().file(".wh.link").bytes())
    assert not (scene.target / "link").exists()


def test_nul_in_a_pax_name_is_refused(scene: Scene) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("x")
        info.pax_headers = {"path": "ok\x00../../sentinel/secret"}
        tar.addfile(info)
    with pytest.raises(errdefs.InvalidArgument, match="NUL"):
        scene.apply(buffer.getvalue())


def test_pax_header_bomb_is_refused(scene: Scene) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("x")
        info.pax_headers = {"comment": "x" * (2 << 20)}
        tar.addfile(info)
    with pytest.raises(errdefs.InvalidArgument, match="1 MiB"):
        scene.apply(buffer.getvalue())

"""User resolution from a rootfs, including hostile symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pycontainerd.errdefs import FailedPrecondition, InvalidArgument, NotFound
from pycontainerd.oci import generate_spec, resolve_user, with_supplementary_groups, with_user
from pycontainerd.oci.rootfs_path import read_text_in_root, resolve_in_root
from pycontainerd.oci.users import parse_group, parse_passwd


def _user(user: str, rootfs: Path | None) -> dict:
    return generate_spec("default", "c1", with_user(user, rootfs))["process"]["user"]


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("app", {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10, 29]}),
        ("1000", {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10, 29]}),
        ("root", {"uid": 0, "gid": 0, "additionalGids": [0, 10]}),
        ("app:staff", {"uid": 1000, "gid": 50, "additionalGids": [50, 10, 29]}),
        ("app:44", {"uid": 1000, "gid": 44, "additionalGids": [44, 10, 29]}),
        ("1:audio", {"uid": 1, "gid": 29, "additionalGids": [29, 44]}),
        ("1000:1000", {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10, 29]}),
        # a uid unknown to /etc/passwd runs with gid 0 and no extra groups
        ("5555", {"uid": 5555, "gid": 0, "additionalGids": [0]}),
        ("5555:7", {"uid": 5555, "gid": 7, "additionalGids": [7]}),
        # a primary gid with no /etc/group entry is fine
        ("nogroup-user", {"uid": 1001, "gid": 4242, "additionalGids": [4242]}),
    ],
)
def test_user_forms(rootfs: Path, user: str, expected: dict) -> None:
    assert _user(user, rootfs) == expected


@pytest.mark.parametrize(
    ("user", "error", "fragment"),
    [
        ("nobody", NotFound, "user 'nobody' not found"),
        ("app:nogroup", NotFound, "group 'nogroup' not found"),
        ("ghost:0", NotFound, "user 'ghost'"),
        ("a:b:c", InvalidArgument, "invalid user"),
        (":0", InvalidArgument, "invalid user"),
        ("app:", InvalidArgument, "empty group"),
        ("broken", NotFound, "not found"),
    ],
)
def test_user_errors(rootfs: Path, user: str, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        _user(user, rootfs)


def test_uid_beyond_runc_limit_is_a_name(rootfs: Path) -> None:
    with pytest.raises(NotFound):
        _user(str(2**31), rootfs)


def test_without_rootfs_only_numeric_pairs_work() -> None:
    assert _user("7:8", None) == {"uid": 7, "gid": 8, "additionalGids": [8]}
    with pytest.raises(FailedPrecondition, match="rootfs"):
        _user("app", None)
    with pytest.raises(InvalidArgument, match="absolute"):
        _user("app", Path("relative/rootfs"))


def test_spec_root_path_is_used_when_absolute(rootfs: Path) -> None:
    spec = generate_spec("default", "c1")
    spec["root"]["path"] = str(rootfs)
    with_user("app")(spec)
    assert spec["process"]["user"]["uid"] == 1000


def test_missing_passwd_and_group(tmp_path: Path) -> None:
    empty_root = tmp_path / "empty"
    empty_root.mkdir()
    assert _user("42", empty_root) == {"uid": 42, "gid": 0, "additionalGids": [0]}
    with pytest.raises(NotFound):
        _user("app", empty_root)


def test_supplementary_groups_keep_uid_gid(rootfs: Path) -> None:
    spec = generate_spec("default", "c1")
    spec["process"]["user"] = {"uid": 1000, "gid": 5}
    with_supplementary_groups(rootfs)(spec)
    assert spec["process"]["user"] == {"uid": 1000, "gid": 5, "additionalGids": [5, 10, 29]}


class TestHostileRootfs:
    """The image controls its symlinks; they must never lead out of the rootfs."""

    @pytest.fixture
    def outside(self, tmp_path: Path) -> Path:
        secret = tmp_path / "outside" / "passwd"
        secret.parent.mkdir()
        secret.write_text("evil:x:666:666::/:/bin/sh\n")
        (tmp_path / "outside" / "group").write_text("evilgroup:x:777:evil\n")
        return secret

    def _evil_root(self, tmp_path: Path, target: str) -> Path:
        root = tmp_path / "evil-rootfs"
        (root / "etc").mkdir(parents=True)
        os.symlink(target, root / "etc" / "passwd")
        return root

    def test_absolute_symlink_is_rerooted(self, tmp_path: Path, outside: Path) -> None:
        root = self._evil_root(tmp_path, str(outside))
        with pytest.raises(NotFound):
            _user("evil", root)
        assert _user("666", root) == {"uid": 666, "gid": 0, "additionalGids": [0]}
        assert resolve_in_root(root, "/etc/passwd") == root / str(outside).lstrip("/")

    def test_dotdot_symlink_stops_at_root(self, tmp_path: Path, outside: Path) -> None:
        depth = len(tmp_path.parts) + 5
        root = self._evil_root(tmp_path, "../" * depth + str(outside).lstrip("/"))
        with pytest.raises(NotFound):
            _user("evil", root)
        relative = self._evil_root(tmp_path / "x", "../../../outside/passwd")
        with pytest.raises(NotFound):
            _user("evil", relative)

    def test_symlinked_etc_directory(self, tmp_path: Path, outside: Path) -> None:
        root = tmp_path / "evil-rootfs"
        root.mkdir()
        os.symlink(str(outside.parent), root / "etc")
        with pytest.raises(NotFound):
            _user("evil", root)
        with pytest.raises(NotFound):
            _user("app:evilgroup", root)

    def test_symlink_inside_root_is_followed(self, rootfs: Path) -> None:
        (rootfs / "lib").mkdir()
        (rootfs / "etc" / "passwd").rename(rootfs / "lib" / "passwd")
        os.symlink("/lib/passwd", rootfs / "etc" / "passwd")
        assert _user("app", rootfs)["uid"] == 1000
        os.unlink(rootfs / "etc" / "passwd")
        os.symlink("../lib/./passwd", rootfs / "etc" / "passwd")
        assert _user("app", rootfs)["uid"] == 1000

    def test_symlink_loop(self, tmp_path: Path) -> None:
        root = self._evil_root(tmp_path, "/etc/passwd")
        with pytest.raises(InvalidArgument, match="too many levels"):
            _user("app", root)

    def test_not_a_regular_file(self, tmp_path: Path) -> None:
        root = tmp_path / "r"
        (root / "etc" / "passwd").mkdir(parents=True)
        with pytest.raises(InvalidArgument, match="not a regular file"):
            read_text_in_root(root, "/etc/passwd")
        fifo_root = tmp_path / "f"
        (fifo_root / "etc").mkdir(parents=True)
        os.mkfifo(fifo_root / "etc" / "passwd")
        with pytest.raises(InvalidArgument, match="not a regular file"):
            _user("app", fifo_root)


def test_parsers_skip_malformed_lines() -> None:
    assert [e.name for e in parse_passwd("a:x:1:1\nb:x:1\nc:x:-1:0\n\n#d:x:1:1\n")] == ["a"]
    groups = parse_group("g:x:5:u1, u2,\nbad\nh:x:6\n")
    assert [(g.name, g.gid, g.members) for g in groups] == [("g", 5, ("u1", "u2")), ("h", 6, ())]


def test_resolve_user_direct(rootfs: Path) -> None:
    assert resolve_user("app", rootfs) == (1000, 1000)

"""Run the process as an image user: resolve names via the rootfs's passwd and group.

Accepts the OCI image config forms: ``user``, ``uid``, ``user:group``,
``uid:gid``, ``uid:group``, ``user:gid``. Supplementary groups come from
/etc/group membership, with the primary gid listed first (as containerd does).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pycontainerd.errdefs import FailedPrecondition, InvalidArgument, NotFound
from pycontainerd.oci.process import set_user
from pycontainerd.oci.rootfs_path import read_text_in_root
from pycontainerd.oci.spec import Spec, SpecOpt, process_of, root_of

MAX_ID = 2**31 - 1
"""runc's limit for uids and gids (containerd follows it)."""


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def parse_passwd(text: str) -> list[PasswdEntry]:
    """Entries of an /etc/passwd text; malformed lines are skipped."""
    entries = []
    for fields in _colon_records(text):
        if len(fields) >= 4 and (uid := _parse_id(fields[2])) is not None:
            gid = _parse_id(fields[3])
            if gid is not None:
                entries.append(PasswdEntry(fields[0], uid, gid))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    """Entries of an /etc/group text; malformed lines are skipped."""
    entries = []
    for fields in _colon_records(text):
        if len(fields) >= 3 and (gid := _parse_id(fields[2])) is not None:
            members = fields[3].split(",") if len(fields) > 3 else []
            entries.append(GroupEntry(fields[0], gid, tuple(m.strip() for m in members if m)))
    return entries


def _colon_records(text: str) -> list[list[str]]:
    lines = (line.strip() for line in text.splitlines())
    return [line.split(":") for line in lines if line and not line.startswith("#")]


def _parse_id(text: str) -> int | None:
    text = text.strip()
    if not text.isdigit():
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def _read_db(root: Path, path: str) -> str | None:
    """The file's text, or None when the rootfs has no such file."""
    try:
        return read_text_in_root(root, path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _passwd(root: Path) -> list[PasswdEntry]:
    text = _read_db(root, "/etc/passwd")
    return parse_passwd(text) if text is not None else []


def _groups(root: Path) -> list[GroupEntry]:
    text = _read_db(root, "/etc/group")
    return parse_group(text) if text is not None else []


def _rootfs(spec: Spec, rootfs: str | os.PathLike[str] | None) -> Path | None:
    """The rootfs to look users up in: ``rootfs``, else the spec's root if absolute."""
    if rootfs is not None:
        path = Path(rootfs)
        if not path.is_absolute():
            raise InvalidArgument(f"rootfs {str(path)!r} must be an absolute path")
        return path
    path = Path(root_of(spec).get("path", ""))
    return path if path.is_absolute() else None


def _numeric_user(user: str) -> tuple[int, int] | None:
    """``(uid, gid)`` when ``user`` is ``uid:gid`` with both numeric."""
    uid_text, sep, gid_text = user.partition(":")
    uid, gid = _parse_id(uid_text), _parse_id(gid_text)
    return (uid, gid) if sep and uid is not None and gid is not None else None


def resolve_user(user: str, root: Path) -> tuple[int, int]:
    """``(uid, gid)`` for an image ``User`` string, looked up in ``root``."""
    parts = user.split(":")
    if len(parts) > 2 or not parts[0]:
        raise InvalidArgument(f"invalid user {user!r}: use user, uid, user:group or uid:gid")
    uid = _parse_id(parts[0])
    if len(parts) == 1:
        if uid is None:
            entry = _find_user(root, parts[0], lambda e: e.name == parts[0])
            return entry.uid, entry.gid
        # A bare uid need not exist in /etc/passwd; its group is then 0.
        match = [e for e in _passwd(root) if e.uid == uid]
        return uid, match[0].gid if match else 0
    if not parts[1]:
        raise InvalidArgument(f"invalid user {user!r}: empty group after ':'")
    gid = _parse_id(parts[1])
    if uid is None:
        uid = _find_user(root, parts[0], lambda e: e.name == parts[0]).uid
    if gid is None:
        groups = [g for g in _groups(root) if g.name == parts[1]]
        if not groups:
            raise NotFound(f"group {parts[1]!r} not found in {root}/etc/group")
        gid = groups[0].gid
    return uid, gid


def _find_user(root: Path, what: str, accept: Callable[[PasswdEntry], bool]) -> PasswdEntry:
    for entry in _passwd(root):
        if accept(entry):
            return entry
    raise NotFound(f"user {what!r} not found in {root}/etc/passwd")


def supplementary_gids(root: Path, uid: int) -> list[int]:
    """Gids of the groups that list the user with ``uid`` as a member.

    A group named like the user is skipped (it is the user's own primary group
    in the usual layout), as containerd does.
    """
    names = [e.name for e in _passwd(root) if e.uid == uid]
    if not names:
        return []
    name = names[0]
    return [g.gid for g in _groups(root) if g.name != name and name in g.members]


def with_user(user: str, rootfs: str | os.PathLike[str] | None = None) -> SpecOpt:
    """Run as ``user`` (image config syntax), resolved in ``rootfs``.

    ``rootfs`` defaults to the spec's root path when that is absolute. Only a
    numeric ``uid:gid`` works without a rootfs; names must exist in it.
    """

    def opt(spec: Spec) -> None:
        root = _rootfs(spec, rootfs)
        if root is None:
            numeric = _numeric_user(user)
            if numeric is None:
                raise FailedPrecondition(
                    f"resolving user {user!r} needs the container's rootfs: pass rootfs= "
                    "(e.g. the mounted snapshot) or set an absolute root path"
                )
            set_user(spec, *numeric, [])
            return
        uid, gid = resolve_user(user, root)
        set_user(spec, uid, gid, supplementary_gids(root, uid))

    return opt


def with_supplementary_groups(rootfs: str | os.PathLike[str] | None = None) -> SpecOpt:
    """Keep uid/gid, but list the groups the current uid belongs to in ``rootfs``."""

    def opt(spec: Spec) -> None:
        root = _rootfs(spec, rootfs)
        if root is None:
            raise FailedPrecondition(
                "listing supplementary groups needs the container's rootfs: pass rootfs="
            )
        user = process_of(spec)["user"]
        set_user(spec, user["uid"], user["gid"], supplementary_gids(root, user["uid"]))

    return opt

"""OCI bundles: the per-task directories a shim runs in.

A bundle lives at ``<state>/<namespace>/<id>/`` and holds the spec
(``config.json``), the ``rootfs`` mount point, a ``work`` link to a persistent
directory under ``<root>/<namespace>/<id>``, the shim's ``address`` and the
path of the shim binary (``shim-binary-path``), so a restarted daemon can find
and clean up after the shim. The layout is containerd's runtime v2 layout.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pycontainerd import errdefs, mount
from pycontainerd.fsutil import atomic_write
from pycontainerd.identifiers import validate_identifier

CONFIG_FILE = "config.json"
ROOTFS_DIR = "rootfs"
WORK_LINK = "work"
ADDRESS_FILE = "address"
SHIM_BINARY_FILE = "shim-binary-path"
LOG_FIFO = "log"
EXIT_FILE = "init-exit"  # a TaskExit of the init process, once one was published


@dataclass(frozen=True)
class Bundle:
    id: str
    namespace: str
    path: Path

    @property
    def rootfs(self) -> Path:
        return self.path / ROOTFS_DIR

    def read(self, name: str) -> str:
        """A small file of the bundle; "" when it is absent."""
        try:
            return (self.path / name).read_text().strip()
        except FileNotFoundError:
            return ""

    def write(self, name: str, text: str) -> None:
        """Write a small file of the bundle atomically."""
        atomic_write(self.path / name, text, durable=False)

    def read_bytes(self, name: str) -> bytes:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return b""

    def write_bytes(self, name: str, data: bytes) -> None:
        atomic_write(self.path / name, data, durable=False)

    def delete(self) -> None:
        """Unmount the rootfs and remove the bundle and its work directory.

        Each directory is renamed to a hidden name first, so a crash half-way
        leaves nothing that looks like a live bundle.
        """
        work = _read_link(self.path / WORK_LINK)
        if self.rootfs.exists():
            try:
                mount.unmount_all(str(self.rootfs))
            except errdefs.ContainerdError:
                mount.unmount_all(str(self.rootfs), flags=mount.MNT_DETACH)
        _atomic_remove(self.path)
        if work is not None:
            _atomic_remove(work)


def remapped_root_gid(spec: bytes) -> int:
    """The host gid of the container's root in a user namespace; 0 without one."""
    try:
        parsed = json.loads(spec) if spec else {}
    except ValueError as exc:
        raise errdefs.InvalidArgument(f"the task's spec is not valid JSON: {exc}") from exc
    linux = parsed.get("linux") if isinstance(parsed, dict) else None
    for mapping in (linux or {}).get("gidMappings") or ():
        if isinstance(mapping, dict) and mapping.get("containerID") == 0:
            return int(mapping.get("hostID") or 0)
    return 0


def _let_remapped_root_in(path: Path, spec: bytes) -> None:
    """As containerd: the bundle (0700) opens to the group of a remapped root.

    In a user namespace the runtime's container init runs as the mapped root,
    which must reach the rootfs mount point inside the bundle.
    """
    gid = remapped_root_gid(spec)
    if gid:
        os.chown(path, -1, gid)
        os.chmod(path, 0o710)


def _read_link(path: Path) -> Path | None:
    try:
        return Path(os.readlink(path))
    except OSError:
        return None


def _atomic_remove(path: Path) -> None:
    hidden = path.with_name("." + path.name)
    try:
        os.rename(path, hidden)
    except FileNotFoundError:
        return
    shutil.rmtree(hidden, ignore_errors=True)


class BundleStore:
    """Creates and finds bundles under the runtime plugin's state and root directories."""

    def __init__(self, state: Path, root: Path) -> None:
        self.state = state
        self.root = root

    def path_of(self, namespace: str, task_id: str) -> Path:
        return self.state / namespace / task_id

    def load(self, namespace: str, task_id: str) -> Bundle:
        return Bundle(task_id, namespace, self.path_of(namespace, task_id))

    def create(self, namespace: str, task_id: str, spec: bytes) -> Bundle:
        """A new bundle with the spec written; AlreadyExists if one is there."""
        validate_identifier(task_id, "task id")
        validate_identifier(namespace, "namespace")
        bundle = self.load(namespace, task_id)
        work = self.root / namespace / task_id
        bundle.path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        work.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        try:
            bundle.path.mkdir(mode=0o700)
        except FileExistsError as exc:
            raise errdefs.AlreadyExists(
                f"bundle for task {task_id!r} in namespace {namespace!r} already exists at "
                f"{bundle.path}"
            ) from exc
        try:
            _let_remapped_root_in(bundle.path, spec)
            bundle.rootfs.mkdir(mode=0o711)
            shutil.rmtree(work, ignore_errors=True)  # a leftover of a crash before a reboot
            work.mkdir(mode=0o711)
            os.symlink(work, bundle.path / WORK_LINK)
            (bundle.path / CONFIG_FILE).write_bytes(spec)
        except BaseException:
            with contextlib.suppress(OSError, errdefs.ContainerdError):
                bundle.delete()
            raise
        return bundle

    def existing(self) -> list[Bundle]:
        """Every bundle on disk, skipping hidden (half-deleted) directories."""
        found: list[Bundle] = []
        for ns_dir in _visible_dirs(self.state):
            for task_dir in _visible_dirs(ns_dir):
                found.append(Bundle(task_dir.name, ns_dir.name, task_dir))
        return found

    def remove_orphan_work_dirs(self, keep: set[tuple[str, str]]) -> None:
        """Remove work directories whose bundle is gone (e.g. after a reboot wiped state)."""
        for ns_dir in _visible_dirs(self.root):
            for work in _visible_dirs(ns_dir):
                if (ns_dir.name, work.name) not in keep:
                    shutil.rmtree(work, ignore_errors=True)


def _visible_dirs(parent: Path) -> list[Path]:
    try:
        entries = sorted(parent.iterdir())
    except FileNotFoundError:
        return []
    return [e for e in entries if e.is_dir() and not e.is_symlink() and not e.name.startswith(".")]

"""Directories an overlay layer implies but does not list: made like those below it.

A layer may hold ``a/b/file`` without an entry for ``a/b``. Applied into an
empty overlay upper directory, ``a/b`` must still be created there, and in the
merged view it replaces the lower layers' ``a/b``: made with a fixed 0755 and
root as owner, it would silently change that directory's mode and owner.
Like containerd, take them from the nearest lower layer that has it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from pycontainerd import errdefs
from pycontainerd.archive.scoped_root import ScopedRoot, make_plain_dir


class LowerDirs:
    """A ``make_dir`` for ScopedRoot copying mode and owner from ``lowers`` (nearest first).

    ``made`` (optional) hears the path of every directory it creates.
    """

    def __init__(
        self, lowers: Sequence[Path], made: Callable[[tuple[str, ...]], None] | None = None
    ) -> None:
        self._lowers = list(lowers)
        self._roots: list[ScopedRoot] | None = None
        self._made = made

    def __call__(self, parent_fd: int, name: str, path: tuple[str, ...]) -> None:
        if self._made is not None:
            self._made(path)
        found = self.lookup(path)
        if found is None:
            make_plain_dir(parent_fd, name, path)
            return
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        os.chown(name, found.st_uid, found.st_gid, dir_fd=parent_fd, follow_symlinks=False)
        os.chmod(name, stat.S_IMODE(found.st_mode), dir_fd=parent_fd)  # after chown: it clears suid

    def lookup(self, path: tuple[str, ...]) -> os.stat_result | None:
        """The directory at ``path`` in the merged lower layers, or None.

        Lookups resolve symlinks inside each layer, never outside it. The
        nearest layer that has anything at ``path`` decides: a non-directory
        there hides the directories further down.
        """
        for root in self._open_roots():
            try:
                fd = root.open_dir(path)
            except FileNotFoundError:
                continue
            except errdefs.InvalidArgument:
                return None  # something other than a directory is there
            try:
                return os.fstat(fd)
            finally:
                os.close(fd)
        return None

    def _open_roots(self) -> list[ScopedRoot]:
        if self._roots is None:
            self._roots = []
            for lower in self._lowers:
                with contextlib.suppress(FileNotFoundError):
                    self._roots.append(ScopedRoot(lower))
        return self._roots

    def close(self) -> None:
        for root in self._roots or ():
            root.close()
        self._roots = None

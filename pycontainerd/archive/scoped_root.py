"""Directory handles inside a root, resolved as if the root were ``/``.

Every path component is opened relative to its parent's descriptor with
O_NOFOLLOW; a symlink met on the way is read and resolved against the root
(absolute targets restart at the root, ``..`` never climbs above it), the way
the kernel would resolve it inside a chroot. So no lookup can leave the root,
whatever symlinks the tree holds.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable

from pycontainerd import errdefs

MAX_SYMLINKS = 40  # the kernel's limit
_CACHE_LIMIT = 128
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

#: Creates the missing directory ``name`` in ``parent_fd``; ``path`` is where it is in the root.
MakeDir = Callable[[int, str, tuple[str, ...]], None]


def make_plain_dir(parent_fd: int, name: str, path: tuple[str, ...]) -> None:
    """The default for missing directories: mode 0755, owned by whoever applies."""
    os.mkdir(name, 0o755, dir_fd=parent_fd)
    os.chmod(name, 0o755, dir_fd=parent_fd)  # the umask may have cut bits


class PathEscape(errdefs.InvalidArgument):
    """A path (or a symlink on it) leads outside the root where that is refused."""


def normalize(name: str, *, what: str = "path") -> tuple[str, ...]:
    """Components of an archive path, made relative; ``..`` may not climb above the root.

    A leading ``/`` is dropped (like containerd and tar), ``.`` and empty parts
    are ignored, and ``a/../b`` is folded to ``b``.
    """
    if "\0" in name:
        raise errdefs.InvalidArgument(f"{what} {name!r} contains a NUL byte")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise PathEscape(f"{what} {name!r} escapes the root with '..'")
            parts.pop()
            continue
        parts.append(part)
    return tuple(parts)


class ScopedRoot:
    """Open directory descriptors under ``root`` by chroot-like resolution.

    Descriptors of parent directories are cached; call ``invalidate`` after
    removing or replacing any directory so stale handles are dropped before
    the next lookup. ``make_dir`` creates the directories a lookup with
    ``create`` finds missing.
    """

    def __init__(self, root: str | os.PathLike[str], *, make_dir: MakeDir = make_plain_dir) -> None:
        self._make_dir = make_dir
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._cache: dict[tuple[str, ...], int] = {}
        self._stale = False

    def close(self) -> None:
        self._drop_cache()
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def __enter__(self) -> ScopedRoot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def invalidate(self) -> None:
        """Forget cached handles before the next lookup (handles in use stay open)."""
        self._stale = True

    def _drop_cache(self) -> None:
        for fd in self._cache.values():
            os.close(fd)
        self._cache.clear()
        self._stale = False

    def dir_fd(self, parts: tuple[str, ...], *, create: bool = False) -> int:
        """Descriptor of directory ``parts`` (owned by this object: do not close it).

        Missing directories are created by ``make_dir`` when ``create`` is set.
        """
        if not parts:
            return self.root_fd
        if self._stale:
            self._drop_cache()
        fd = self._cache.get(parts)
        if fd is None:
            fd = self.open_dir(parts, create=create)
            if len(self._cache) >= _CACHE_LIMIT:
                self._drop_cache()
            self._cache[parts] = fd
        return fd

    def open_dir(
        self, parts: tuple[str, ...], *, create: bool = False, allow_escape: bool = True
    ) -> int:
        """A new descriptor (the caller closes it) of directory ``parts``.

        With ``allow_escape=False`` a symlink whose target climbs above the root
        raises PathEscape instead of being clamped at the root.
        """
        stack = [self.root_fd]  # descriptors of the real directories walked so far
        walked: list[str] = []  # and their names
        pending = list(reversed(parts))
        links = 0
        try:
            while pending:
                part = pending.pop()
                if part in ("", "."):
                    continue
                if part == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                        walked.pop()
                    elif not allow_escape:
                        raise PathEscape(f"{'/'.join(parts)!r} resolves outside the root")
                    continue
                target = self._open_component(stack[-1], part, create, parts, walked)
                if isinstance(target, int):
                    stack.append(target)
                    walked.append(part)
                    continue
                links += 1
                if links > MAX_SYMLINKS:
                    raise errdefs.InvalidArgument(
                        f"too many levels of symbolic links resolving {'/'.join(parts)!r}"
                    )
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                    walked.clear()
                pending.extend(reversed(target.split("/")))
            result = stack.pop() if len(stack) > 1 else os.dup(self.root_fd)
        finally:
            for fd in stack[1:]:
                os.close(fd)
        return result

    def _open_component(
        self, parent_fd: int, name: str, create: bool, parts: tuple[str, ...], walked: list[str]
    ) -> int | str:
        """Open one directory component; returns its fd, or a symlink's target text."""
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):
                self._make_dir(parent_fd, name, (*walked, name))
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(name, dir_fd=parent_fd)
        raise errdefs.InvalidArgument(
            f"cannot use {'/'.join(parts)!r} as a directory: its component {name!r} is not one"
        )

"""Mounts as the API describes them, and the Linux syscalls that perform them.

A `Mount` is what a snapshotter hands out (type, source, fstab-style options);
`mount_all` puts a list of them on a target directory. Options are split the
way mount(8) does it: names like ``ro``, ``nosuid`` or ``rbind`` become
mount(2) flags, propagation names (``rprivate``, ...) become a second call, and
everything else (``lowerdir=...``, ``upperdir=...``, ``size=...``) is handed to
the filesystem as its data string.

The kernel copies at most one page of mount data. Overlay mounts with many
layers exceed it when every lowerdir is an absolute path, so such mounts are
performed from the layers' common parent directory with relative lowerdirs
(snapshot ids are short numbers, so each entry costs a few bytes). See
`_mount_from_directory` for how the working directory is changed safely in a
multi-threaded daemon.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from pycontainerd import errdefs

# mount(2) flags, from <sys/mount.h>.
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000

PROPAGATION_FLAGS = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE

# umount2(2) flags.
MNT_FORCE = 0x1
MNT_DETACH = 0x2

#: Option name -> (flag, True when the option clears the flag instead of setting it).
_FLAG_OPTIONS: dict[str, tuple[int, bool]] = {
    "async": (MS_SYNCHRONOUS, True),
    "atime": (MS_NOATIME, True),
    "bind": (MS_BIND, False),
    "defaults": (0, False),
    "dev": (MS_NODEV, True),
    "diratime": (MS_NODIRATIME, True),
    "dirsync": (MS_DIRSYNC, False),
    "exec": (MS_NOEXEC, True),
    "mand": (MS_MANDLOCK, False),
    "noatime": (MS_NOATIME, False),
    "nodev": (MS_NODEV, False),
    "nodiratime": (MS_NODIRATIME, False),
    "noexec": (MS_NOEXEC, False),
    "nomand": (MS_MANDLOCK, True),
    "norelatime": (MS_RELATIME, True),
    "nostrictatime": (MS_STRICTATIME, True),
    "nosuid": (MS_NOSUID, False),
    "rbind": (MS_BIND | MS_REC, False),
    "relatime": (MS_RELATIME, False),
    "remount": (MS_REMOUNT, False),
    "ro": (MS_RDONLY, False),
    "rw": (MS_RDONLY, True),
    "strictatime": (MS_STRICTATIME, False),
    "suid": (MS_NOSUID, True),
    "sync": (MS_SYNCHRONOUS, False),
}

_PROPAGATION_OPTIONS: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: Room kept free below the page size before overlay options get compacted.
_COMPACT_MARGIN = 512
_LOWERDIR = "lowerdir="

_UNMOUNT_BUSY_RETRIES = 50
_UNMOUNT_BUSY_DELAY = 0.05

# The process's own libc: find_library would run ldconfig at import.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.mount.restype = ctypes.c_int
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.umount2.restype = ctypes.c_int


@dataclass
class Mount:
    """One mount, like the API's ``containerd.types.Mount``."""

    type: str
    source: str
    target: str = ""
    options: list[str] = field(default_factory=list)

    def mount(self, target: str) -> None:
        """Mount this onto `target` (an existing directory)."""
        _mount_one(self, os.path.abspath(target))


@dataclass(frozen=True)
class ParsedOptions:
    """fstab-style options split into what mount(2) wants."""

    flags: int
    propagation: int
    data: str


def parse_options(options: Iterable[str]) -> ParsedOptions:
    """Split options into mount flags, propagation flags and the fs data string.

    Later options win over earlier ones (``ro,rw`` is read-write), as with mount(8).
    """
    flags = 0
    propagation = 0
    data: list[str] = []
    for option in options:
        if option in _FLAG_OPTIONS:
            flag, clears = _FLAG_OPTIONS[option]
            flags = flags & ~flag if clears else flags | flag
        elif option in _PROPAGATION_OPTIONS:
            propagation |= _PROPAGATION_OPTIONS[option]
        elif option == "loop":
            raise errdefs.NotImplemented_(
                "mount option 'loop' is not supported: attach the image to a loop device "
                "first and mount the device"
            )
        else:
            data.append(option)
    return ParsedOptions(flags=flags, propagation=propagation, data=",".join(data))


def compact_overlay_options(options: Sequence[str]) -> tuple[str, list[str]]:
    """Rewrite lowerdirs relative to their common parent directory.

    Returns ``(directory, options)``; the options must be used with the working
    directory set to `directory`. Returns ``("", options)`` unchanged when there
    is nothing to gain (one lowerdir, or no common parent below ``/``).
    """
    index = next((i for i, o in enumerate(options) if o.startswith(_LOWERDIR)), -1)
    if index < 0:
        return "", list(options)
    lowerdirs = options[index][len(_LOWERDIR) :].split(":")
    if len(lowerdirs) < 2 or not all(os.path.isabs(d) for d in lowerdirs):
        return "", list(options)
    # Whole path components: ids 12 and 13 stay "12/fs" and "13/fs".
    common = os.path.commonpath(lowerdirs)
    if common in ("", "/"):
        return "", list(options)
    relative = [os.path.relpath(d, common) for d in lowerdirs]
    compacted = list(options)
    compacted[index] = _LOWERDIR + ":".join(relative)
    return common, compacted


def _options_size(options: Sequence[str]) -> int:
    return sum(len(o) + 1 for o in options)


def _mount_one(m: Mount, target: str) -> None:
    options = list(m.options)
    directory = ""
    if m.type == "overlay" and _options_size(options) >= PAGE_SIZE - _COMPACT_MARGIN:
        directory, options = compact_overlay_options(options)
    parsed = parse_options(options)
    if len(parsed.data) >= PAGE_SIZE:
        raise errdefs.InvalidArgument(
            f"mount of {m.source} on {target}: options are {len(parsed.data)} bytes, over "
            f"the kernel limit of {PAGE_SIZE - 1}; use fewer layers or shorter paths"
        )
    flags = parsed.flags & ~PROPAGATION_FLAGS
    if directory:
        _mount_from_directory(directory, m.source, target, m.type, flags, parsed.data, m)
    else:
        _sys_mount(m.source, target, m.type, flags, parsed.data, m)
    try:
        if parsed.propagation:
            _sys_mount("", target, "", parsed.propagation | MS_SILENT, "", m)
        if flags & (MS_BIND | MS_RDONLY | MS_REMOUNT) == MS_BIND | MS_RDONLY:
            # The kernel ignores MS_RDONLY when creating a bind mount; a remount applies it.
            _sys_mount("", target, "", flags | MS_REMOUNT, "", m)
    except errdefs.ContainerdError:
        if not flags & MS_REMOUNT:
            with contextlib.suppress(errdefs.ContainerdError):
                _sys_unmount(target, MNT_DETACH)
        raise


def _describe(m: Mount, target: str) -> str:
    options = ",".join(m.options)
    if len(options) > 300:
        options = options[:300] + "..."
    return f"mount {m.source!r} on {target} (type {m.type!r}, options {options!r})"


def _mount_error(err: int, what: str) -> errdefs.ContainerdError:
    """The error kind for a failed syscall; the errno stays on `.errno`."""
    kind: type[errdefs.ContainerdError]
    if err in (errno.ENOENT, errno.ENOTDIR):
        kind = errdefs.NotFound
    elif err == errno.EINVAL:
        kind = errdefs.InvalidArgument
    elif err == errno.EBUSY:
        kind = errdefs.Unavailable
    else:
        kind = errdefs.FailedPrecondition
    exc = kind(f"{what} failed: [Errno {err}] {os.strerror(err)}")
    exc.errno = err
    return exc


def _sys_mount(source: str, target: str, fstype: str, flags: int, data: str, m: Mount) -> None:
    rc = _libc.mount(
        source.encode() or None,
        target.encode(),
        fstype.encode() or None,
        flags,
        data.encode() or None,
    )
    if rc != 0:
        raise _mount_error(ctypes.get_errno(), _describe(m, target))


# Runs in a fresh interpreter whose working directory is already the layers'
# common parent. Prints the errno on failure so the caller can report it.
_CHDIR_MOUNT_PROGRAM = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
source, target, fstype, flags, data = sys.argv[1:6]
if libc.mount(source.encode(), target.encode(), fstype.encode(), int(flags), data.encode()):
    print(ctypes.get_errno())
    sys.exit(1)
"""


def _mount_from_directory(
    directory: str, source: str, target: str, fstype: str, flags: int, data: str, m: Mount
) -> None:
    """Call mount(2) with `directory` as the working directory.

    The working directory belongs to the whole process, and the daemon runs
    many threads, so changing it in-process would break paths used by other
    threads at the same moment. Forking the daemon and running Python code in
    the child is not safe either (locks held by other threads at fork time
    stay locked forever in the child). So a fresh interpreter does the call:
    subprocess's fork+exec path changes directory in C between fork and exec
    without running Python code, which is safe with threads. It costs one
    interpreter start, and only mounts too long for a page pay it.
    """
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _CHDIR_MOUNT_PROGRAM, source, target, fstype]
        + [str(flags), data],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        return
    what = f"{_describe(m, target)} from directory {directory}"
    code = result.stdout.strip()
    if code.isdigit():
        raise _mount_error(int(code), what)
    raise errdefs.FailedPrecondition(f"{what} failed: helper said {result.stderr.strip()!r}")


def mount_all(mounts: Sequence[Mount], target: str) -> None:
    """Mount each of `mounts` on `target`, in order (later ones stack on top).

    If one fails, those already mounted are unmounted before the error is raised.
    """
    target = os.path.abspath(target)
    done = 0
    try:
        for m in mounts:
            m.mount(target)
            done += 1
    except BaseException:
        for _ in range(done):
            with contextlib.suppress(errdefs.ContainerdError):
                unmount(target, flags=MNT_DETACH)
        raise


def _sys_unmount(target: str, flags: int) -> bool:
    """Unmount the top mount of `target`; False when nothing is mounted there."""
    for _ in range(_UNMOUNT_BUSY_RETRIES):
        if _libc.umount2(target.encode(), flags) == 0:
            return True
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):
            return False
        if err != errno.EBUSY:
            raise _mount_error(err, f"unmount of {target}")
        time.sleep(_UNMOUNT_BUSY_DELAY)
    raise _mount_error(errno.EBUSY, f"unmount of {target} (still busy after retries)")


def _unescape_mountinfo(field_: str) -> str:
    r"""mountinfo writes space, tab, newline and backslash as \ooo octal escapes."""
    if "\\" not in field_:
        return field_
    out = []
    i = 0
    while i < len(field_):
        chunk = field_[i + 1 : i + 4]
        if field_[i] == "\\" and len(chunk) == 3 and chunk.isdigit():
            out.append(chr(int(chunk, 8)))
            i += 4
        else:
            out.append(field_[i])
            i += 1
    return "".join(out)


def mount_points_under(path: str) -> list[str]:
    """Mount points at or below `path`, in the order they were mounted."""
    path = os.path.realpath(path)
    prefix = path.rstrip("/") + "/"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        points = [_unescape_mountinfo(line.split()[4]) for line in f if line.strip()]
    return [p for p in points if p == path or p.startswith(prefix)]


def filesystem_type(path: str) -> str:
    """The type (``ext4``, ``tmpfs``...) of the file system `path` is on; "" if not found."""
    path = os.path.realpath(path)
    found, found_point = "", ""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            if "-" not in fields:
                continue
            point = _unescape_mountinfo(fields[4])
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            # The deepest mount point wins; of stacked mounts, the last listed (the top).
            if inside and len(point) >= len(found_point):
                found, found_point = fields[fields.index("-") + 1], point
    return found


def unmount(target: str, recursive: bool = False, flags: int = 0) -> None:
    """Unmount the top mount of `target`; not being mounted is not an error.

    With `recursive`, every mount below `target` goes first (newest first),
    then the top mount of `target`. Busy mounts are retried for a short while.
    """
    target = os.path.realpath(target)
    if recursive:
        for point in reversed(mount_points_under(target)):
            if point != target:
                _sys_unmount(point, flags)
    _sys_unmount(target, flags)


def unmount_all(target: str, flags: int = 0) -> None:
    """Unmount everything at or below `target`, stacked mounts included."""
    if not target or not os.path.exists(target):
        return
    for _ in range(64):
        points = mount_points_under(target)
        if not points:
            return
        for point in reversed(points):
            _sys_unmount(point, flags)
    raise errdefs.Unavailable(
        f"mounts keep appearing under {target}; stop whatever mounts there and retry"
    )


@contextlib.contextmanager
def temp_mount(mounts: Sequence[Mount], parent: str | None = None) -> Iterator[str]:
    """Mount `mounts` on a new temporary directory and yield its path.

    On exit everything is unmounted (lazily if a busy mount will not go) and the
    directory is removed, whether the body succeeded or not.
    """
    path = tempfile.mkdtemp(prefix="pycontainerd-mount-", dir=parent)
    try:
        mount_all(mounts, path)
        yield path
    finally:
        try:
            unmount_all(path)
        except errdefs.ContainerdError:
            unmount_all(path, flags=MNT_DETACH)
        os.rmdir(path)

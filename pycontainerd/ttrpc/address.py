"""Unix socket addresses as containerd writes them (``unix:///path``, ``@abstract``)."""

from __future__ import annotations

from pycontainerd.errdefs import InvalidArgument

UNIX_SCHEME = "unix://"
# sun_path is 108 bytes on Linux, including the terminating NUL for filesystem paths.
MAX_SOCKET_PATH = 107


def socket_path(address: str) -> str:
    """The path to hand to ``socket.connect``/``bind`` for a ttrpc address.

    A ``unix://`` prefix is dropped; a leading ``@`` names an abstract socket
    (Linux), which Python spells with a leading NUL byte.
    """
    path = address.removeprefix(UNIX_SCHEME)
    if not path:
        raise InvalidArgument(f"empty ttrpc address {address!r}: expected unix:///path or a path")
    if path.startswith("@"):
        path = "\0" + path[1:]
    if len(path.encode()) > MAX_SOCKET_PATH:
        raise InvalidArgument(
            f"unix socket path too long ({len(path.encode())} > {MAX_SOCKET_PATH} bytes): {path!r};"
            " use a shorter directory"
        )
    return path


def is_abstract(path: str) -> bool:
    return path.startswith("\0")

"""The shim's command line, parsed the way Go's flag package does it.

containerd runs ``<shim> -namespace NS -address ADDR -publish-binary BIN -id ID
[-debug] start`` (and ``... -id ID -bundle PATH delete``). Go flags take one or two
dashes, ``-name value`` or ``-name=value``; booleans take no value (or ``=true``);
parsing stops at the first argument that is not a flag, which is the action.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pycontainerd import errdefs

_BOOL_FLAGS = {"debug", "v", "info"}
_STRING_FLAGS = {
    "namespace",
    "id",
    "socket",
    "bundle",
    "address",
    "publish-binary",
    # Between our own `start` and the long-lived shim it spawns: the inherited listener fd.
    "listen-fd",
}
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


class ShimFlags:
    """The parsed flags (a plain class: `start` runs per container and skips dataclasses)."""

    #: Field names in command-line order, with their defaults.
    FIELDS: tuple[tuple[str, str | bool], ...] = (
        ("namespace", ""),
        ("id", ""),
        ("socket", ""),
        ("bundle", ""),
        ("address", ""),
        ("publish_binary", "containerd"),
        ("listen_fd", ""),
        ("debug", False),
        ("v", False),
        ("info", False),
    )

    namespace: str
    id: str
    socket: str
    bundle: str
    address: str
    publish_binary: str
    listen_fd: str
    debug: bool
    v: bool
    info: bool  # containerd 2's -info: print RuntimeInfo for the options on stdin

    def __init__(self, args: list[str] | None = None, **values: str | bool) -> None:
        for name, default in self.FIELDS:
            setattr(self, name, values.pop(name, default))
        if values:
            raise TypeError(f"unknown shim flags: {sorted(values)}")
        self.args = list(args or [])

    def _values(self) -> tuple[object, ...]:
        return (*(getattr(self, name) for name, _ in self.FIELDS), self.args)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShimFlags) and self._values() == other._values()

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name, _ in self.FIELDS)
        return f"ShimFlags({shown}, args={self.args!r})"

    @property
    def action(self) -> str:
        """``start``, ``delete``, or "" for the long-lived shim."""
        return self.args[0] if self.args else ""

    def to_argv(self) -> list[str]:
        """The flags back as arguments (for the shim that `start` spawns)."""
        argv: list[str] = []
        for name, _ in self.FIELDS:
            value = getattr(self, name)
            if not value:
                continue
            flag = "-" + name.replace("_", "-")
            argv += [flag] if isinstance(value, bool) else [flag, str(value)]
        return argv


def parse_flags(argv: Sequence[str]) -> ShimFlags:
    """Parse arguments (without the program name); raises InvalidArgument on bad ones."""
    flags = ShimFlags()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, has_value, value = arg.lstrip("-").partition("=")
        attribute = name.replace("-", "_")
        if name in _BOOL_FLAGS:
            if has_value and value not in _TRUE | _FALSE:
                raise errdefs.InvalidArgument(f"invalid boolean value {value!r} for -{name}")
            setattr(flags, attribute, not has_value or value in _TRUE)
        elif name in _STRING_FLAGS:
            if not has_value:
                i += 1
                if i >= len(argv):
                    raise errdefs.InvalidArgument(f"flag needs an argument: -{name}")
                value = argv[i]
            setattr(flags, attribute, value)
        else:
            raise errdefs.InvalidArgument(f"flag provided but not defined: -{name}")
        i += 1
    flags.args = list(argv[i:])
    return flags


#: The module the long-lived shim runs as.
SHIM_MODULE = "pycontainerd.shim_v2.main"


def shim_argv(flags: ShimFlags) -> list[str]:
    """The long-lived shim's command line (the inverse of `parse_flags`, as a program):
    what is exec'ed, or shown by a forked shim."""
    return [sys.executable, "-m", SHIM_MODULE, *flags.to_argv()]

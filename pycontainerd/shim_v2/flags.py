"""The shim's command line, parsed the way Go's flag package does it.

containerd runs ``<shim> -namespace NS -address ADDR -publish-binary BIN -id ID
[-debug] start`` (and ``... -id ID -bundle PATH delete``). Go flags take one or two
dashes, ``-name value`` or ``-name=value``; booleans take no value (or ``=true``);
parsing stops at the first argument that is not a flag, which is the action.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from pycontainerd import errdefs

_BOOL_FLAGS = {"debug", "v"}
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


@dataclass
class ShimFlags:
    namespace: str = ""
    id: str = ""
    socket: str = ""
    bundle: str = ""
    address: str = ""
    publish_binary: str = "containerd"
    listen_fd: str = ""
    debug: bool = False
    v: bool = False
    args: list[str] = field(default_factory=list)

    @property
    def action(self) -> str:
        """``start``, ``delete``, or "" for the long-lived shim."""
        return self.args[0] if self.args else ""

    def to_argv(self) -> list[str]:
        """The flags back as arguments (for the shim that `start` spawns)."""
        argv: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            name = f.name.replace("_", "-")
            if f.name == "args" or not value:
                continue
            argv += [f"-{name}"] if isinstance(value, bool) else [f"-{name}", str(value)]
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

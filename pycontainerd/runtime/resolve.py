"""Which shim binary runs a runtime name.

A runtime table in the config maps names to binaries; otherwise containerd's
convention applies: ``io.containerd.<name>.<version>`` runs
``containerd-shim-<name>-<version>`` found on PATH. An absolute path names the
binary itself.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any

from pycontainerd import errdefs

# The shipped default: what ctr and dockerd ask for runs on our Python shim.
DEFAULT_RUNTIMES: dict[str, dict[str, str]] = {
    "io.containerd.runc.v2": {"shim": "containerd-shim-pyrunc-v2"},
    "io.containerd.runc.v1": {"shim": "containerd-shim-pyrunc-v2"},
    # containerd 1.6's legacy runtime; its RuncOptions name the runtime binary.
    "io.containerd.runtime.v1.linux": {"shim": "containerd-shim-pyrunc-v2"},
}


def binary_name(runtime: str) -> str:
    """``io.containerd.runc.v2`` -> ``containerd-shim-runc-v2``; "" when not of that form."""
    parts = runtime.split(".")
    if len(parts) < 2 or not all(parts):
        return ""
    return f"containerd-shim-{parts[-2]}-{parts[-1]}"


def runtime_table(configured: Mapping[str, Any] | None) -> dict[str, str]:
    """Runtime name -> shim binary, the configured entries over the defaults."""
    table = {name: entry["shim"] for name, entry in DEFAULT_RUNTIMES.items()}
    for name, entry in (configured or {}).items():
        if isinstance(entry, str):
            table[name] = entry
        elif isinstance(entry, Mapping) and isinstance(entry.get("shim"), str):
            table[name] = entry["shim"]
        else:
            raise errdefs.InvalidArgument(
                f"runtime {name!r} in the runtime table needs a `shim` string "
                f'(e.g. shim = "containerd-shim-runc-v2"), got {entry!r}'
            )
    return table


def resolve_shim(runtime: str, table: Mapping[str, str]) -> str:
    """The absolute path of the shim binary for ``runtime``.

    Raises InvalidArgument for a name that is neither in the table nor of the
    ``io.containerd.<name>.<v>`` form, NotFound when the binary is missing.
    """
    if not runtime:
        raise errdefs.InvalidArgument("no runtime name: set the container's runtime")
    if os.path.isabs(runtime):
        return _check_executable(runtime, runtime)
    wanted = table.get(runtime) or binary_name(runtime)
    if not wanted:
        raise errdefs.InvalidArgument(
            f"invalid runtime name {runtime!r}: use the io.containerd.<name>.<version> form, "
            "an absolute path to a shim, or add it to the runtime table "
            '([plugins."io.containerd.runtime.v2.task".runtimes])'
        )
    if os.path.isabs(wanted):
        return _check_executable(runtime, wanted)
    found = shutil.which(wanted, path=_search_path())
    if found is None:
        raise errdefs.NotFound(
            f"runtime {runtime!r}: shim binary {wanted!r} is not installed (not found on PATH); "
            "install it or map the runtime to another shim in the runtime table"
        )
    return os.path.abspath(found)


def _search_path() -> str:
    """PATH, after the directory of the daemon's own interpreter.

    Our shim is installed beside the daemon (a virtual environment's bin/, which
    need not be on PATH); the copy that came with this daemon is the one to run.
    """
    own = os.path.dirname(sys.executable)
    return os.pathsep.join(p for p in (own, os.environ.get("PATH", "")) if p)


def _check_executable(runtime: str, path: str) -> str:
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise errdefs.NotFound(
            f"runtime {runtime!r}: shim binary {path!r} does not exist or is not executable"
        )
    return path

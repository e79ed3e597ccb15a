"""``containerd-shim-pyrunc-v2``: containerd's shim v2 binary, in Python.

Actions (after Go-style flags, see `flags.py`): ``start`` launches or finds the
shim and prints its address; ``delete`` cleans up after a dead shim and prints a
DeleteResponse; no action runs the long-lived shim (only `start` does that).
Imports are deferred to the action that needs them: ``start`` runs once per
container and should not pay for the Task service.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from pycontainerd import __version__, errdefs
from pycontainerd.heap import tune_allocator
from pycontainerd.rlimits import raise_open_files_limit
from pycontainerd.shim_v2.contract import SHIM_BINARY_NAME
from pycontainerd.shim_v2.flags import ShimFlags, parse_flags

NAME = SHIM_BINARY_NAME


def _start(flags: ShimFlags, bundle: str) -> int:
    from pycontainerd.shim_v2.options import decode_serialized_options
    from pycontainerd.shim_v2.start import start

    # containerd sends the runtime options on stdin (start needs the shim cgroup);
    # the shim reads them again at Create.
    data = b"" if sys.stdin.closed else sys.stdin.buffer.read()
    sys.stdout.write(start(flags, bundle, options=decode_serialized_options(data)))
    sys.stdout.flush()
    return 0


def _delete(flags: ShimFlags, bundle: str) -> int:
    import asyncio
    import logging

    from pycontainerd.shim_v2.cleanup import cleanup

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    response = asyncio.run(cleanup(flags, bundle))
    sys.stdout.buffer.write(response.SerializeToString())
    sys.stdout.buffer.flush()
    return 0


def _serve(flags: ShimFlags, bundle: str) -> int:
    from pycontainerd.shim_v2.server import run_server

    run_server(flags, bundle)
    return 0


_ACTIONS = {"start": _start, "delete": _delete, "": _serve}


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    raise_open_files_limit()  # before `start` forks: the zygote and every shim inherit it
    tune_allocator()  # likewise, and before any thread
    try:
        flags = parse_flags(args)
        if flags.v:
            print(f"{NAME}:\n  Version:  {__version__}\n")
            return 0
        if flags.info:
            from pycontainerd.shim_v2.info import runtime_info

            data = b"" if sys.stdin.closed else sys.stdin.buffer.read()
            sys.stdout.buffer.write(runtime_info(data).SerializeToString())
            sys.stdout.buffer.flush()
            return 0
        if not flags.namespace:
            raise errdefs.InvalidArgument("shim namespace cannot be empty (-namespace)")
        action = _ACTIONS.get(flags.action)
        if action is None:
            raise errdefs.InvalidArgument(
                f"unknown action {flags.action!r}; expected start or delete"
            )
        return action(flags, os.path.abspath(flags.bundle or os.getcwd()))
    except errdefs.ContainerdError as exc:
        sys.stderr.write(f"{NAME}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())

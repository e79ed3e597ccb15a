"""pyctr's entry point: global options, dispatch, and one-line errors."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from ctr.commands import (
    completion,
    containers,
    content,
    events,
    images,
    info,
    leases,
    namespaces,
    plugins,
    run,
    snapshots,
    tasks,
    version,
)
from pycontainerd import errdefs
from pycontainerd.client import Client
from pycontainerd.config import DEFAULT_ADDRESS

COMMAND_MODULES = (
    version,
    info,
    plugins,
    namespaces,
    content,
    images,
    snapshots,
    containers,
    tasks,
    run,
    leases,
    events,
    completion,
)


def _env(*names: str, default: str) -> str:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyctr",
        description="Command line client for pycontainerd (and containerd), shaped like ctr: "
        "the same commands and flags, plus --format json on listings, progress bars and "
        "one-line errors. Start with `pyctr images pull --plain-http REF` and "
        "`pyctr run --rm REF ID`.",
    )
    parser.add_argument(
        "-a",
        "--address",
        default=_env("CONTAINERD_ADDRESS", "PYCONTAINERD_ADDRESS", default=str(DEFAULT_ADDRESS)),
        help="daemon socket (env CONTAINERD_ADDRESS or PYCONTAINERD_ADDRESS)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default=_env("CONTAINERD_NAMESPACE", default="default"),
        help="namespace (env CONTAINERD_NAMESPACE, default 'default')",
    )
    parser.add_argument(
        "--timeout", type=float, default=0, help="seconds the whole command may take (0: no limit)"
    )
    parser.add_argument(
        "--connect-timeout", type=float, default=10.0, help="seconds to wait for the daemon"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    commands.required = True
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


async def _run(args: argparse.Namespace) -> int:
    async with (
        asyncio.timeout(args.timeout or None),
        Client(args.address, args.namespace, connect_timeout=args.connect_timeout) as client,
    ):
        return await args.handler(client, args) or 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "offline_handler", None) is not None:
        return args.offline_handler(parser, args)
    try:
        return asyncio.run(_run(args))
    except errdefs.ContainerdError as exc:
        return _fail(str(exc) or type(exc).__name__)
    except TimeoutError:
        return _fail(f"command did not finish within {args.timeout:g}s (--timeout)")
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        return _fail(str(exc))


def _fail(message: str) -> int:
    print(f"pyctr: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

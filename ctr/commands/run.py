"""pyctr run: create a container from an image and run its task, like ``ctr run``."""

from __future__ import annotations

import argparse
import contextlib

from ctr.attached import run_in_foreground
from ctr.commands import add_command
from ctr.commands.tasks import add_io_flags, stdio_for
from ctr.container_flags import add_container_flags, create_container
from pycontainerd import errdefs
from pycontainerd.client import Client


async def run(client: Client, args: argparse.Namespace) -> int:
    if args.rm and args.detach:
        raise errdefs.InvalidArgument("--rm and -d cannot be used together")
    container = await create_container(client, args)
    try:
        task = await container.new_task(stdio_for(args, detach=args.detach, tty=args.tty))
        if args.detach:
            await task.start()
            return 0
        try:
            return await run_in_foreground(task, tty=args.tty)
        finally:
            with contextlib.suppress(errdefs.NotFound):
                await task.delete(force=True)
    finally:
        if args.rm:
            with contextlib.suppress(errdefs.NotFound):
                await container.delete()


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = add_command(
        subparsers,
        "run",
        run,
        "run a container from a pulled image (exit status is the container's)",
    )
    cmd.add_argument("--rm", action="store_true", help="remove the container when it exits")
    cmd.add_argument("-d", "--detach", action="store_true", help="start and return at once")
    add_io_flags(cmd)
    add_container_flags(cmd)

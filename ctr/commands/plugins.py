"""pyctr plugins ls: what the daemon loaded."""

from __future__ import annotations

import argparse
import dataclasses

from ctr.commands import add_command, add_group
from ctr.output import print_json, print_table
from pycontainerd.client import Client


async def list_plugins(client: Client, args: argparse.Namespace) -> None:
    plugins = await client.plugins(args.filters)
    if args.format == "json":
        print_json([dataclasses.asdict(p) | {"status": p.status} for p in plugins])
        return
    if args.quiet:
        for plugin in plugins:
            print(f"{plugin.type}.{plugin.id}")
        return
    rows = [[p.type, p.id, ",".join(p.platforms) or "-", p.status] for p in plugins]
    print_table(["TYPE", "ID", "PLATFORMS", "STATUS"], rows, padding=4)


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_group(subparsers, "plugins", "list the daemon's plugins", aliases=("plugin",))
    ls = add_command(group, "ls", list_plugins, "list plugins", aliases=("list",))
    ls.add_argument("filters", nargs="*", help="filters, e.g. type==io.containerd.grpc.v1")
    ls.add_argument("-q", "--quiet", action="store_true", help="print only type.id")
    ls.add_argument("--format", choices=("table", "json"), default="table")

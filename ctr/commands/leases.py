"""pyctr leases: create, ls, rm."""

from __future__ import annotations

import argparse
import sys

from ctr.args import parse_duration, parse_labels
from ctr.commands import add_command, add_group
from ctr.output import add_format_option, labels_text, print_json, print_table, when
from pycontainerd import errdefs
from pycontainerd.client import Client


async def create(client: Client, args: argparse.Namespace) -> None:
    expire = parse_duration(args.expires) if args.expires else None
    lease = await client.leases.create(args.id, labels=parse_labels(args.labels), expire=expire)
    print(lease.id)


async def list_leases(client: Client, args: argparse.Namespace) -> None:
    leases = await client.leases.list(args.filters)
    if args.quiet:
        for lease in leases:
            print(lease.id)
        return
    if args.format == "json":
        print_json(
            [
                {"id": x.id, "created_at": when(x.created_at), "labels": dict(x.labels)}
                for x in leases
            ]
        )
        return
    rows = [
        [
            lease.id,
            lease.created_at.isoformat(timespec="seconds") if lease.created_at else "-",
            labels_text(lease.labels),
        ]
        for lease in leases
    ]
    print_table(["ID", "CREATED AT", "LABELS"], rows)


async def remove(client: Client, args: argparse.Namespace) -> None:
    for lease_id in args.ids:
        try:
            await client.leases.delete(lease_id, sync=args.sync)
        except errdefs.NotFound:
            print(f"pyctr: lease {lease_id!r} not found", file=sys.stderr)
            continue
        print(lease_id)


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_group(subparsers, "leases", "manage leases", aliases=("lease",))
    cmd = add_command(group, "create", create, "create a lease and print its id")
    cmd.add_argument("labels", nargs="*", metavar="KEY=VALUE")
    cmd.add_argument("--id", help="the lease id (default: generated)")
    cmd.add_argument("-x", "--expires", default="24h", help="expire after (Go duration; '' never)")
    cmd = add_command(group, "ls", list_leases, "list leases", aliases=("list",))
    cmd.add_argument("filters", nargs="*")
    cmd.add_argument("-q", "--quiet", action="store_true", help="print only ids")
    add_format_option(cmd)
    cmd = add_command(group, "rm", remove, "remove leases", aliases=("delete", "remove"))
    cmd.add_argument("ids", nargs="+", metavar="ID")
    cmd.add_argument("--sync", action="store_true", help="wait for the garbage collector")

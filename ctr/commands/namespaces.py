"""pyctr namespaces: create, ls, label, rm."""

from __future__ import annotations

import argparse
import sys

from ctr.args import parse_labels
from ctr.commands import add_command, add_group
from ctr.output import add_format_option, labels_text, print_json, print_table
from pycontainerd import errdefs
from pycontainerd.client import Client


async def create(client: Client, args: argparse.Namespace) -> None:
    await client.namespaces.create(args.name, parse_labels(args.labels))


async def list_namespaces(client: Client, args: argparse.Namespace) -> None:
    namespaces = await client.namespaces.list()
    if args.quiet:
        for namespace in namespaces:
            print(namespace.name)
        return
    if args.format == "json":
        print_json([{"name": n.name, "labels": dict(n.labels)} for n in namespaces])
        return
    print_table(["NAME", "LABELS"], [[n.name, labels_text(n.labels)] for n in namespaces])


async def label(client: Client, args: argparse.Namespace) -> None:
    await client.namespaces.set_labels(args.name, parse_labels(args.labels))


async def remove(client: Client, args: argparse.Namespace) -> int:
    failed = 0
    for name in args.names:
        try:
            await client.namespaces.delete(name)
        except errdefs.NotFound:
            print(f"pyctr: namespace {name!r} not found", file=sys.stderr)
            continue
        except errdefs.ContainerdError as exc:
            print(f"pyctr: cannot remove namespace {name!r}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(name)
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_group(subparsers, "namespaces", "manage namespaces", aliases=("namespace", "ns"))
    cmd = add_command(group, "create", create, "create a namespace")
    cmd.add_argument("name")
    cmd.add_argument("labels", nargs="*", metavar="KEY=VALUE")
    cmd = add_command(group, "ls", list_namespaces, "list namespaces", aliases=("list",))
    cmd.add_argument("-q", "--quiet", action="store_true", help="print only names")
    add_format_option(cmd)
    cmd = add_command(group, "label", label, "set (or with KEY= remove) labels")
    cmd.add_argument("name")
    cmd.add_argument("labels", nargs="+", metavar="KEY=VALUE")
    cmd = add_command(group, "rm", remove, "remove empty namespaces", aliases=("remove",))
    cmd.add_argument("names", nargs="+", metavar="NAME")

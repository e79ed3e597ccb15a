"""pyctr content: ls, get, ingest, rm, label, active, fetch."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator

from ctr.args import parse_labels
from ctr.commands import add_command, add_group
from ctr.commands.remote import add_platform_options, add_registry_options, fetch_image
from ctr.output import (
    add_format_option,
    age,
    human_size,
    labels_text,
    print_json,
    print_table,
    when,
)
from pycontainerd import errdefs
from pycontainerd.client import Client

STDIN_CHUNK = 1 << 20


async def list_content(client: Client, args: argparse.Namespace) -> None:
    infos = await client.content.list(args.filters)
    if args.quiet:
        for info in infos:
            print(info.digest)
        return
    if args.format == "json":
        print_json(
            [
                {
                    "digest": i.digest,
                    "size": i.size,
                    "created_at": when(i.created_at),
                    "labels": dict(i.labels),
                }
                for i in infos
            ]
        )
        return
    rows = [[i.digest, human_size(i.size), age(i.created_at), labels_text(i.labels)] for i in infos]
    print_table(["DIGEST", "SIZE", "AGE", "LABELS"], rows)


async def get(client: Client, args: argparse.Namespace) -> None:
    out = sys.stdout.buffer
    async for chunk in client.content.read(args.digest):
        out.write(chunk)
    out.flush()


async def _stdin_chunks() -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    while chunk := await loop.run_in_executor(None, sys.stdin.buffer.read, STDIN_CHUNK):
        yield chunk


async def ingest(client: Client, args: argparse.Namespace) -> None:
    await client.content.write(
        args.ref,
        _stdin_chunks(),
        expected=args.expected_digest or "",
        total=args.expected_size or 0,
        labels=parse_labels(args.label),
    )


async def remove(client: Client, args: argparse.Namespace) -> None:
    for digest in args.digests:
        try:
            await client.content.delete(digest)
        except errdefs.NotFound:
            print(f"pyctr: content {digest} not found", file=sys.stderr)


async def label(client: Client, args: argparse.Namespace) -> None:
    labels = parse_labels(args.labels)
    info = await client.content.update_labels(args.digest, labels)
    print(f"updated {info.digest}")


async def active(client: Client, args: argparse.Namespace) -> None:
    statuses = await client.content.list_statuses(args.filters)
    if args.format == "json":
        print_json(
            [
                {
                    "ref": s.ref,
                    "offset": s.offset,
                    "total": s.total,
                    "started_at": when(s.started_at),
                }
                for s in statuses
            ]
        )
        return
    rows = [[s.ref, human_size(s.offset), age(s.started_at)] for s in statuses]
    print_table(["REF", "SIZE", "AGE"], rows)


async def fetch(client: Client, args: argparse.Namespace) -> None:
    image = await fetch_image(client, args, unpack=False)
    print(f"fetched {image.name} ({image.target.digest})")


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_group(subparsers, "content", "manage the content store")
    cmd = add_command(group, "ls", list_content, "list blobs", aliases=("list",))
    cmd.add_argument("filters", nargs="*", help='filters, e.g. labels."k"==v')
    cmd.add_argument("-q", "--quiet", action="store_true", help="print only digests")
    add_format_option(cmd)
    cmd = add_command(group, "get", get, "write a blob to stdout")
    cmd.add_argument("digest")
    cmd = add_command(group, "ingest", ingest, "store stdin as a blob under REF")
    cmd.add_argument("ref")
    cmd.add_argument("--expected-size", type=int, help="size the data must have")
    cmd.add_argument("--expected-digest", help="digest the data must have")
    cmd.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    cmd = add_command(group, "rm", remove, "remove blobs", aliases=("delete", "del", "remove"))
    cmd.add_argument("digests", nargs="+", metavar="DIGEST")
    cmd = add_command(group, "label", label, "set (or with KEY= remove) labels of a blob")
    cmd.add_argument("digest")
    cmd.add_argument("labels", nargs="+", metavar="KEY=VALUE")
    cmd = add_command(group, "active", active, "list writes in progress")
    cmd.add_argument("filters", nargs="*")
    add_format_option(cmd)
    cmd = add_command(group, "fetch", fetch, "fetch an image's content from a registry")
    cmd.add_argument("ref", help="image reference, e.g. docker.io/library/busybox:latest")
    add_platform_options(cmd)
    add_registry_options(cmd)

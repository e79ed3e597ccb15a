"""pyctr snapshots: prepare, view, mounts, commit, rm, ls, tree, info, usage, label, diff."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from ctr.args import parse_labels
from ctr.commands import add_command
from ctr.output import (
    add_format_option,
    age,
    binary_size,
    labels_text,
    print_json,
    print_table,
    when,
)
from pycontainerd import errdefs
from pycontainerd.client import Client, SnapshotInfo
from pycontainerd.client.diff import diff_snapshot
from pycontainerd.mount import Mount
from pycontainerd.remotes import mediatypes

GC_ROOT_LABEL = "containerd.io/gc.root"


def _service(client: Client, args: argparse.Namespace):
    return client.snapshots(args.snapshotter)


def _as_json(info: SnapshotInfo) -> dict[str, object]:
    return {
        "Name": info.name,
        "Parent": info.parent,
        "Kind": info.kind.value,
        "Labels": dict(info.labels),
        "Created": when(info.created_at),
        "Updated": when(info.updated_at),
    }


def print_mounts(mounts: Sequence[Mount], target: str) -> None:
    """The shell commands that mount ``mounts`` on ``target``, as ctr prints them."""
    for mount in mounts:
        options = f" -o {','.join(mount.options)}" if mount.options else ""
        print(f"mount -t {mount.type} {mount.source} {target}{options}")


async def prepare(client: Client, args: argparse.Namespace) -> None:
    mounts = await _service(client, args).prepare(args.key, args.parent, parse_labels(args.label))
    if args.target:
        print_mounts(mounts, args.target)


async def view(client: Client, args: argparse.Namespace) -> None:
    mounts = await _service(client, args).view(args.key, args.parent, parse_labels(args.label))
    if args.target:
        print_mounts(mounts, args.target)


async def mounts(client: Client, args: argparse.Namespace) -> None:
    print_mounts(await _service(client, args).mounts(args.key), args.target)


async def commit(client: Client, args: argparse.Namespace) -> None:
    await _service(client, args).commit(args.name, args.key, parse_labels(args.label))


async def remove(client: Client, args: argparse.Namespace) -> int:
    failed = 0
    for key in args.keys:
        try:
            await _service(client, args).remove(key)
        except errdefs.ContainerdError as exc:
            print(f"pyctr: cannot remove snapshot {key!r}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(key)
    return 1 if failed else 0


async def list_snapshots(client: Client, args: argparse.Namespace) -> None:
    infos = await _service(client, args).list(args.filters)
    if args.quiet:
        for info in infos:
            print(info.name)
        return
    if args.format == "json":
        print_json([_as_json(i) for i in infos])
        return
    rows = [[i.name, i.parent or "-", i.kind.value, age(i.created_at)] for i in infos]
    print_table(["KEY", "PARENT", "KIND", "AGE"], rows, padding=4)


async def tree(client: Client, args: argparse.Namespace) -> None:
    infos = await _service(client, args).list()
    children: dict[str, list[str]] = {}
    for info in infos:
        children.setdefault(info.parent, []).append(info.name)

    def show(name: str, depth: int) -> None:
        print(f"{'  ' * depth}\\_ {name}" if depth else name)
        for child in sorted(children.get(name, [])):
            show(child, depth + 1)

    for root in sorted(children.get("", [])):
        show(root, 0)


async def info(client: Client, args: argparse.Namespace) -> None:
    print_json(_as_json(await _service(client, args).stat(args.key)))


async def usage(client: Client, args: argparse.Namespace) -> None:
    service = _service(client, args)
    keys = args.keys or [i.name for i in await service.list()]
    found = [(key, await service.usage(key)) for key in keys]
    if args.format == "json":
        print_json([{"Key": k, "Size": u.size, "Inodes": u.inodes} for k, u in found])
        return
    rows = [[k, binary_size(u.size), str(u.inodes)] for k, u in found]
    print_table(["KEY", "SIZE", "INODES"], rows, padding=4)


async def label(client: Client, args: argparse.Namespace) -> None:
    updated = await _service(client, args).update_labels(args.key, parse_labels(args.labels))
    print(labels_text(updated.labels))


async def diff(client: Client, args: argparse.Namespace) -> None:
    labels = parse_labels(args.label)
    if args.keep:
        labels[GC_ROOT_LABEL] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    layer = await diff_snapshot(
        client,
        args.key,
        parent=args.parent,
        snapshotter=args.snapshotter,
        media_type=args.media_type,
        ref=args.ref or "",
        labels=labels,
    )
    print(layer.digest)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "snapshots", aliases=["snapshot"], help="manage snapshots (layered filesystems)"
    )
    parser.add_argument(
        "--snapshotter", default="overlayfs", help="snapshotter (default overlayfs)"
    )
    group = parser.add_subparsers(title="commands", metavar="COMMAND")
    group.required = True

    def keyed(
        name: str, handler, help_text: str, *extra: str, aliases=()
    ) -> argparse.ArgumentParser:
        cmd = add_command(group, name, handler, help_text, aliases=aliases)
        for argument in extra:
            cmd.add_argument(argument)
        return cmd

    for name, handler, help_text in (
        ("prepare", prepare, "create an active snapshot KEY on PARENT"),
        ("view", view, "create a read-only snapshot KEY of PARENT"),
    ):
        cmd = keyed(name, handler, help_text, "key")
        cmd.add_argument("parent", nargs="?", default="", help="a committed snapshot")
        cmd.add_argument("--target", help="print the mount commands for this directory")
        cmd.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    keyed("mounts", mounts, "print the mount commands for snapshot KEY on TARGET", "target", "key", aliases=("m", "mount"))  # fmt: skip
    cmd = keyed("commit", commit, "commit the active snapshot KEY as NAME", "name", "key")
    cmd.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    cmd = keyed("rm", remove, "remove snapshots", aliases=("remove", "delete", "del"))
    cmd.add_argument("keys", nargs="+", metavar="KEY")
    cmd = keyed("ls", list_snapshots, "list snapshots", aliases=("list",))
    cmd.add_argument("filters", nargs="*")
    cmd.add_argument("-q", "--quiet", action="store_true", help="print only keys")
    add_format_option(cmd)
    keyed("tree", tree, "show snapshots as a tree of parents and children")
    keyed("info", info, "print a snapshot's details as JSON", "key")
    cmd = keyed("usage", usage, "show disk usage of snapshots (default: all)")
    cmd.add_argument("keys", nargs="*", metavar="KEY")
    add_format_option(cmd)
    cmd = keyed("label", label, "set (or with KEY= remove) labels", "key")
    cmd.add_argument("labels", nargs="+", metavar="KEY=VALUE")
    cmd = keyed(
        "diff", diff, "store the changes of snapshot KEY as a layer; print its digest", "key"
    )
    cmd.add_argument(
        "parent", nargs="?", default=None, help="compare with this (default: KEY's parent)"
    )
    cmd.add_argument("--media-type", default=mediatypes.OCI_LAYER_GZIP, help="layer media type")
    cmd.add_argument("--ref", help="content ingest ref for the layer")
    cmd.add_argument(
        "--keep",
        action="store_true",
        help="keep the layer (label it gc.root); else the garbage collector may take it",
    )
    cmd.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="labels for the layer blob",
    )

"""pyctr containers: create, ls, info, rm, label."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from google.protobuf import json_format

from ctr.args import parse_labels
from ctr.commands import add_command, add_group
from ctr.container_flags import add_container_flags, create_container
from ctr.output import add_format_option, age, labels_text, print_json, print_table, when
from pycontainerd import errdefs
from pycontainerd.api.runtime.v2.runc.options import oci_pb2
from pycontainerd.client import Client, ContainerInfo
from pycontainerd.events import typeurl


def describe(info: ContainerInfo) -> dict[str, Any]:
    """A container record as JSON-ready data (the spec decoded, options as JSON)."""
    options: Any = None
    if info.runtime_options is not None:
        message = _runtime_options(info.runtime_options)
        options = (
            json_format.MessageToDict(message, preserving_proto_field_name=True)
            if message is not None
            else {"type_url": info.runtime_options.type_url}
        )
    return {
        "ID": info.id,
        "Labels": dict(info.labels),
        "Image": info.image,
        "Runtime": {"Name": info.runtime, "Options": options},
        "SnapshotKey": info.snapshot_key,
        "Snapshotter": info.snapshotter,
        "CreatedAt": when(info.created_at),
        "UpdatedAt": when(info.updated_at),
        "Spec": info.spec,
    }


def _runtime_options(value: Any) -> Any:
    name = value.type_url.rsplit("/", 1)[-1]
    if name == oci_pb2.Options.DESCRIPTOR.full_name:
        return oci_pb2.Options.FromString(value.value)
    return typeurl.unpack(value)


async def create(client: Client, args: argparse.Namespace) -> None:
    await create_container(client, args)


async def list_containers(client: Client, args: argparse.Namespace) -> None:
    containers = await client.containers.list(args.filters)
    if args.quiet:
        for info in containers:
            print(info.id)
        return
    if args.format == "json":
        print_json([describe(info) for info in containers])
        return
    rows = [
        [c.id, c.image or "-", c.runtime, age(c.created_at), labels_text(c.labels)]
        for c in containers
    ]
    print_table(["CONTAINER", "IMAGE", "RUNTIME", "CREATED", "LABELS"], rows, padding=4)


async def info(client: Client, args: argparse.Namespace) -> None:
    record = describe(await client.containers.get(args.id))
    if args.spec:
        print_json(record["Spec"])
    else:
        print_json(record)


async def remove(client: Client, args: argparse.Namespace) -> int:
    failed = 0
    for container_id in args.ids:
        try:
            container = await client.load_container(container_id)
            if await _has_task(container):
                raise errdefs.FailedPrecondition(
                    f"container {container_id!r} has a task: stop and remove it first "
                    f"(pyctr tasks rm -f {container_id})"
                )
            await container.delete(snapshot=not args.keep_snapshot)
        except errdefs.ContainerdError as exc:
            print(f"pyctr: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(container_id)
    return 1 if failed else 0


async def _has_task(container: Any) -> bool:
    try:
        await container.task()
    except errdefs.NotFound:
        return False
    return True


async def label(client: Client, args: argparse.Namespace) -> None:
    updated = await client.containers.set_labels(args.id, parse_labels(args.labels))
    print(labels_text(updated.labels))


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_group(subparsers, "containers", "manage containers", aliases=("container", "c"))
    cmd = add_command(group, "create", create, "create a container from a pulled image")
    add_container_flags(cmd)
    cmd = add_command(group, "ls", list_containers, "list containers", aliases=("list",))
    cmd.add_argument(
        "filters", nargs="*", help="filters, e.g. image==docker.io/library/busybox:latest"
    )
    cmd.add_argument("-q", "--quiet", action="store_true", help="print only ids")
    add_format_option(cmd)
    cmd = add_command(group, "info", info, "print a container's record as JSON")
    cmd.add_argument("id", metavar="ID")
    cmd.add_argument("--spec", action="store_true", help="print only the OCI runtime spec")
    cmd = add_command(group, "rm", remove, "remove containers and their snapshots", aliases=("delete", "del", "remove"))  # fmt: skip
    cmd.add_argument("ids", nargs="+", metavar="ID")
    cmd.add_argument("--keep-snapshot", action="store_true", help="do not remove the snapshot")
    cmd = add_command(group, "label", label, "set (or with KEY= remove) labels")
    cmd.add_argument("id", metavar="ID")
    cmd.add_argument("labels", nargs="+", metavar="KEY=VALUE")

"""pyctr info: what the daemon is and what it runs."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from ctr.commands import add_command
from ctr.output import add_format_option, print_json
from pycontainerd.client import Client

SNAPSHOTTER_PLUGIN = "io.containerd.snapshotter.v1"
RUNTIME_PLUGIN = "io.containerd.runtime.v2"


async def info(client: Client, args: argparse.Namespace) -> None:
    version = await client.version()
    plugins = await client.plugins()
    namespaces = await client.namespaces.list()
    statuses = Counter(p.status for p in plugins)
    facts: dict[str, Any] = {
        "address": client.address,
        "version": version.version,
        "revision": version.revision,
        "uuid": await client.introspection.server_uuid(),
        "namespaces": [n.name for n in namespaces],
        "snapshotters": sorted(
            p.id for p in plugins if p.type == SNAPSHOTTER_PLUGIN and p.status == "ok"
        ),
        "plugins": {"ok": statuses["ok"], "skip": statuses["skip"], "error": statuses["error"]},
        "tasks_in_namespace": len(await client.tasks.list()),
        "containers_in_namespace": len(await client.containers.list()),
    }
    if args.format == "json":
        print_json(facts)
        return
    plugin_counts = ", ".join(f"{count} {status}" for status, count in facts["plugins"].items())
    print(f"Address:      {facts['address']}")
    print(f"Version:      {facts['version']} ({facts['revision']})")
    print(f"UUID:         {facts['uuid']}")
    print(f"Namespaces:   {', '.join(facts['namespaces']) or '-'}")
    print(f"Snapshotters: {', '.join(facts['snapshotters']) or '-'}")
    print(f"Plugins:      {plugin_counts}")
    print(f"Namespace {client.namespace!r}: {facts['containers_in_namespace']} containers, "
          f"{facts['tasks_in_namespace']} tasks")  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = add_command(subparsers, "info", info, "show what the daemon is and what it holds")
    add_format_option(cmd)

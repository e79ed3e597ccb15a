"""pyctr version: client and server versions."""

from __future__ import annotations

import argparse
import platform

import pycontainerd
from ctr.commands import add_command
from pycontainerd.client import Client


async def version(client: Client, args: argparse.Namespace) -> None:
    server = await client.version()
    uuid = await client.introspection.server_uuid()
    print("Client:")
    print(f"  Version:  {pycontainerd.__version__}")
    print("  Revision: pyctr")
    print(f"  Python version: {platform.python_version()}")
    print()
    print("Server:")
    print(f"  Version:  {server.version}")
    print(f"  Revision: {server.revision}")
    print(f"  UUID: {uuid}")


def register(subparsers: argparse._SubParsersAction) -> None:
    add_command(subparsers, "version", version, "print the client and server versions")

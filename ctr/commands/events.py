"""pyctr events: print events as they happen."""

from __future__ import annotations

import argparse

from google.protobuf import json_format

from ctr.commands import add_command
from pycontainerd.client import Client


async def events(client: Client, args: argparse.Namespace) -> None:
    async for envelope in client.events.subscribe(args.filters):
        payload = (
            json_format.MessageToJson(envelope.event, indent=None, preserving_proto_field_name=True)
            if envelope.event is not None
            else envelope.type_url
        )
        stamp = envelope.timestamp.isoformat() if envelope.timestamp else "-"
        print(stamp, envelope.namespace, envelope.topic, payload, flush=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = add_command(subparsers, "events", events, "print events", aliases=("event",))
    cmd.add_argument("filters", nargs="*", help='filters, e.g. topic~="/images/"')

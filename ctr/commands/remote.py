"""What pulling and pushing commands share: registry options and the progress display."""

from __future__ import annotations

import argparse
import sys

from ctr.args import parse_user
from ctr.progress import ProgressView
from pycontainerd.client import Client, Image


def add_registry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plain-http", action="store_true", help="talk to the registry over plain HTTP"
    )
    parser.add_argument("-u", "--user", help="registry credentials USER[:PASSWORD]")
    parser.add_argument(
        "--max-concurrent", type=int, default=4, help="blobs transferred at once (default 4)"
    )


def add_platform_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--platform", help="pull this platform (default: the host's)")
    parser.add_argument("--all-platforms", action="store_true", help="pull every platform")


async def fetch_image(client: Client, args: argparse.Namespace, *, unpack: bool) -> Image:
    """Pull ``args.ref`` showing progress on stdout; returns the image record."""
    view = ProgressView(sys.stdout)
    try:
        return await client.pull(
            args.ref,
            platform=args.platform,
            all_platforms=args.all_platforms,
            plain_http=args.plain_http,
            credentials=parse_user(args.user),
            unpack=unpack,
            progress=view,
            max_concurrent_downloads=args.max_concurrent,
        )
    finally:
        view.finish()

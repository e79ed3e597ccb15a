"""pyctr images: ls, pull, push, rm, tag (export, import, mount, unmount, check: image_files)."""

from __future__ import annotations

import argparse
import sys

from ctr.args import parse_user
from ctr.commands import add_command, add_group
from ctr.commands.image_files import register_image_files
from ctr.commands.remote import add_platform_options, add_registry_options
from ctr.output import binary_size, labels_text, print_json, print_table
from ctr.progress import ProgressView
from pycontainerd import errdefs
from pycontainerd.client import Client, Image
from pycontainerd.client.imageinfo import image_platforms, image_size
from pycontainerd.client.unpack import DEFAULT_SNAPSHOTTER
from pycontainerd.remotes.platforms import default_matcher


async def _describe(client: Client, image: Image) -> dict[str, object]:
    """The columns of `images ls` for one image; size and platforms are best effort."""
    try:
        size: int | None = await image_size(client.content, image.target, default_matcher())
    except errdefs.NotFound:
        size = None
    try:
        platforms = await image_platforms(client.content, image.target)
    except errdefs.NotFound:
        platforms = []
    return {
        "name": image.name,
        "media_type": image.target.media_type,
        "digest": image.target.digest,
        "size": size,
        "platforms": platforms,
        "labels": dict(image.labels),
    }


async def list_images(client: Client, args: argparse.Namespace) -> None:
    images = await client.images.list(args.filters)
    if args.quiet:
        for image in images:
            print(image.name)
        return
    described = [await _describe(client, image) for image in images]
    if args.format == "json":
        print_json(described)
        return
    rows = [
        [
            str(d["name"]),
            str(d["media_type"]),
            str(d["digest"]),
            binary_size(d["size"]) if isinstance(d["size"], int) else "-",
            ",".join(d["platforms"]) or "-",  # type: ignore[arg-type]
            labels_text(d["labels"]),  # type: ignore[arg-type]
        ]
        for d in described
    ]
    print_table(["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"], rows)


async def pull(client: Client, args: argparse.Namespace) -> None:
    """Fetch, then (unless --no-unpack) unpack while the later layers still download."""
    view = ProgressView(sys.stdout)
    try:
        image = await client.pull(
            args.ref,
            platform=args.platform,
            all_platforms=args.all_platforms,
            plain_http=args.plain_http,
            credentials=parse_user(args.user),
            unpack=not args.no_unpack,
            snapshotter=args.snapshotter,
            progress=view,
            max_concurrent_downloads=args.max_concurrent,
        )
    finally:
        view.finish()
    print(f"pulled {image.name} ({image.target.digest})")


async def push(client: Client, args: argparse.Namespace) -> None:
    view = ProgressView(sys.stdout)
    try:
        root = await client.push(
            args.remote,
            args.local,
            plain_http=args.plain_http,
            credentials=parse_user(args.user),
            progress=view,
            max_concurrent_uploads=args.max_concurrent,
        )
    finally:
        view.finish()
    print(f"pushed {args.remote} ({root.digest})")


async def remove(client: Client, args: argparse.Namespace) -> None:
    for name in args.names:
        try:
            await client.images.delete(name, sync=args.sync)
        except errdefs.NotFound:
            print(f"pyctr: image {name!r} not found", file=sys.stderr)
            continue
        print(name)


async def tag(client: Client, args: argparse.Namespace) -> None:
    for target in args.targets:
        await client.images.tag(args.source, target, force=args.force)
        print(target)


def register(subparsers: argparse._SubParsersAction) -> None:
    group = add_group(subparsers, "images", "manage images", aliases=("image", "i"))
    cmd = add_command(group, "ls", list_images, "list images", aliases=("list",))
    cmd.add_argument("filters", nargs="*", help="filters, e.g. name==docker.io/library/busybox")
    cmd.add_argument("-q", "--quiet", action="store_true", help="print only names")
    cmd.add_argument("--format", choices=("table", "json"), default="table")

    cmd = add_command(group, "pull", pull, "fetch an image from a registry")
    cmd.add_argument("ref", help="image reference, e.g. docker.io/library/busybox:latest")
    add_platform_options(cmd)
    add_registry_options(cmd)
    cmd.add_argument(
        "--no-unpack", action="store_true", help="fetch the content only, do not unpack"
    )
    cmd.add_argument(
        "--unpack", dest="no_unpack", action="store_false", help="unpack layers (the default)"
    )
    cmd.add_argument(
        "--snapshotter",
        default=DEFAULT_SNAPSHOTTER,
        help=f"unpack into this snapshotter (default {DEFAULT_SNAPSHOTTER})",
    )

    cmd = add_command(group, "push", push, "push an image to a registry")
    cmd.add_argument("remote", help="where to push, e.g. 127.0.0.1:5000/me/busybox:1")
    cmd.add_argument("local", nargs="?", help="the local image name (default: REMOTE)")
    add_registry_options(cmd)

    cmd = add_command(group, "rm", remove, "remove images", aliases=("remove", "delete", "del"))
    cmd.add_argument("names", nargs="+", metavar="NAME")
    cmd.add_argument("--sync", action="store_true", help="wait for the garbage collector")

    cmd = add_command(group, "tag", tag, "give an image more names")
    cmd.add_argument("source")
    cmd.add_argument("targets", nargs="+", metavar="TARGET")
    cmd.add_argument("--force", action="store_true", help="replace existing targets")

    register_image_files(group)

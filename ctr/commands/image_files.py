"""pyctr images export/import/mount/unmount/check: images as files and filesystems."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
from datetime import timedelta

from ctr.commands import add_command
from ctr.output import add_format_option, binary_size, print_json, print_table
from ctr.progress import ProgressView
from pycontainerd import errdefs
from pycontainerd.client import Client, use_lease
from pycontainerd.client.image_rootfs import image_rootfs
from pycontainerd.client.imageinfo import image_size
from pycontainerd.client.unpack import DEFAULT_SNAPSHOTTER, is_unpacked
from pycontainerd.mount import mount_all, unmount_all
from pycontainerd.remotes.platforms import default_matcher

MOUNT_LEASE_EXPIRY = timedelta(hours=24)


def mount_lease_id(target: str) -> str:
    """The lease that keeps a mounted image's snapshot alive, named after the mount point."""
    return "pyctr-mount-" + hashlib.sha256(target.encode()).hexdigest()[:16]


async def export(client: Client, args: argparse.Namespace) -> None:
    view = ProgressView(sys.stderr)
    try:
        await client.export_archive(args.output, args.names, progress=view)
    finally:
        view.finish()


async def import_(client: Client, args: argparse.Namespace) -> None:
    view = ProgressView(sys.stderr)
    try:
        images = await client.import_archive(
            args.file,
            base_name=args.base_name or "",
            unpack=not args.no_unpack,
            snapshotter=args.snapshotter,
            progress=view,
        )
    finally:
        view.finish()
    if not images:
        raise errdefs.NotFound(
            f"{args.file} names no image: its index.json entries have no "
            "io.containerd.image.name annotation (pass --base-name to name tagged entries)"
        )
    for image in images:
        print(f"imported {image.name} ({image.target.digest})")


async def mount(client: Client, args: argparse.Namespace) -> None:
    target = os.path.abspath(args.target)
    image = await client.images.get(args.ref)
    lease = await client.leases.create(mount_lease_id(target), expire=MOUNT_LEASE_EXPIRY)
    with use_lease(lease.id):
        rootfs = await image_rootfs(client, image, args.snapshotter)
        snapshots = client.snapshots(args.snapshotter)
        make = snapshots.prepare if args.rw else snapshots.view
        mounts = await make(target, rootfs.top_chain_id)
    try:
        mount_all(mounts, target)
    except BaseException:
        await snapshots.remove(target)
        await client.leases.delete(lease.id)
        raise
    print(target)


async def unmount(client: Client, args: argparse.Namespace) -> None:
    target = os.path.abspath(args.target)
    unmount_all(target)
    if args.rm:
        with contextlib.suppress(errdefs.NotFound):
            await client.snapshots(args.snapshotter).remove(target)
        with contextlib.suppress(errdefs.NotFound):
            await client.leases.delete(mount_lease_id(target))
    print(target)


async def check(client: Client, args: argparse.Namespace) -> None:
    rows = []
    for image in await client.images.list(args.filters):
        try:
            size: int | None = await image_size(client.content, image.target, default_matcher())
            complete = True
        except errdefs.NotFound:
            size, complete = None, False
        try:
            unpacked = complete and await is_unpacked(client, image, args.snapshotter)
        except errdefs.NotFound:
            unpacked = False
        rows.append(
            {
                "name": image.name,
                "media_type": image.target.media_type,
                "digest": image.target.digest,
                "status": "complete" if complete else "incomplete",
                "size": size,
                "unpacked": unpacked,
            }
        )
    if args.format == "json":
        print_json(rows)
        return
    table = [
        [
            str(r["name"]),
            str(r["media_type"]),
            str(r["digest"]),
            str(r["status"]),
            binary_size(r["size"]) if isinstance(r["size"], int) else "-",
            str(r["unpacked"]).lower(),
        ]
        for r in rows
    ]
    print_table(["REF", "TYPE", "DIGEST", "STATUS", "SIZE", "UNPACKED"], table)


def register_image_files(group: argparse._SubParsersAction) -> None:
    """Add export, import, mount, unmount and check to the ``images`` group."""
    cmd = add_command(group, "export", export, "write images to an OCI archive (tar)")
    cmd.add_argument("output", metavar="OUT.tar")
    cmd.add_argument("names", nargs="+", metavar="NAME")
    cmd = add_command(group, "import", import_, "import images from an OCI archive (tar)")
    cmd.add_argument("file", metavar="IN.tar")
    cmd.add_argument("--base-name", help="name for entries that carry only a tag")
    cmd.add_argument("--no-unpack", action="store_true", help="do not unpack the images")
    cmd.add_argument("--snapshotter", default=DEFAULT_SNAPSHOTTER, help="unpack into this snapshotter")  # fmt: skip
    cmd = add_command(group, "mount", mount, "mount an image's filesystem on TARGET")
    cmd.add_argument("ref", metavar="REF")
    cmd.add_argument("target", metavar="TARGET")
    cmd.add_argument("--rw", action="store_true", help="writable (changes are kept in a snapshot)")
    cmd.add_argument("--snapshotter", default=DEFAULT_SNAPSHOTTER)
    cmd = add_command(group, "unmount", unmount, "unmount what `images mount` mounted", aliases=("umount",))  # fmt: skip
    cmd.add_argument("target", metavar="TARGET")
    cmd.add_argument("--rm", action="store_true", help="also remove its snapshot and lease")
    cmd.add_argument("--snapshotter", default=DEFAULT_SNAPSHOTTER)
    cmd = add_command(group, "check", check, "check that images are complete and unpacked")
    cmd.add_argument("filters", nargs="*")
    cmd.add_argument("--snapshotter", default=DEFAULT_SNAPSHOTTER)
    add_format_option(cmd)

"""The flags `run` and `containers create` share, and the container they describe."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ctr.args import parse_labels
from pycontainerd import errdefs, oci
from pycontainerd.api.runtime.v2.runc.options import oci_pb2
from pycontainerd.client import Client, Container
from pycontainerd.oci import SpecOpt

_SIZE = re.compile(r"^(\d+)([kmgt]?)i?b?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def add_container_flags(parser: argparse.ArgumentParser) -> None:
    """ctr's `run`/`containers create` flags: IMAGE ID [COMMAND [ARG...]] and options."""
    parser.add_argument(
        "image", metavar="IMAGE", help="a pulled image, e.g. docker.io/library/busybox:latest"
    )
    parser.add_argument("id", metavar="ID", help="the new container's id")
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="COMMAND [ARG...]",
        help="replaces the image's command",
    )
    add = parser.add_argument
    add("-t", "--tty", action="store_true", help="give the process a terminal")
    add(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set an environment variable (repeatable)",
    )
    add("--env-file", metavar="FILE", help="read KEY=VALUE lines from FILE")
    add(
        "--mount",
        action="append",
        default=[],
        metavar="SPEC",
        help="type=bind,src=/host,dst=/ctr,options=rbind:ro (repeatable)",
    )
    add("--net-host", action="store_true", help="use the host's network namespace")
    add("-u", "--user", help="user[:group] or uid[:gid], names looked up in the image")
    add("--cwd", help="working directory of the process")
    add("--hostname", help="the container's hostname")
    add("--read-only", action="store_true", help="mount the root filesystem read-only")
    add("--privileged", action="store_true", help="all capabilities and devices, no seccomp")
    add(
        "--memory-limit", type=parse_size, metavar="BYTES", help="memory limit (bytes, or 256m, 1g)"
    )
    add("--cpus", type=float, help="CPU time limit in CPUs, e.g. 0.5")
    add("--rlimit-nofile", type=int, help="RLIMIT_NOFILE (soft and hard)")
    add(
        "--cap-add",
        action="append",
        default=[],
        metavar="CAP",
        help="add a capability, e.g. CAP_SYS_ADMIN",
    )
    add("--cap-drop", action="append", default=[], metavar="CAP", help="drop a capability")
    add("--seccomp", action="store_true", help="apply the default seccomp profile")
    add(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="container label (repeatable)",
    )
    add(
        "--runtime",
        default="io.containerd.runc.v2",
        help="runtime name (default io.containerd.runc.v2)",
    )
    add("--runc-binary", help="the OCI runtime binary the shim runs (e.g. crun)")
    add("--snapshotter", default="overlayfs", help="snapshotter for the root filesystem (default overlayfs)")  # fmt: skip


def parse_size(text: str) -> int:
    """Bytes from ``1048576``, ``512k``, ``256m``, ``1g`` or ``1GiB``."""
    match = _SIZE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use bytes or e.g. 256m, 1g")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def parse_mount(text: str) -> dict[str, object]:
    """ctr's ``--mount`` syntax: ``type=bind,src=/a,dst=/b,options=rbind:ro``."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise errdefs.InvalidArgument(f"invalid --mount {text!r}: expected key=value pairs")
        fields[key.strip()] = value
    source = fields.get("src", fields.get("source", ""))
    destination = fields.get("dst", fields.get("destination", ""))
    if not destination:
        raise errdefs.InvalidArgument(f"invalid --mount {text!r}: dst=/path is required")
    options = [o for o in fields.get("options", "").split(":") if o]
    return {
        "type": fields.get("type", "bind"),
        "source": source,
        "destination": destination,
        "options": options or ["rbind"],
    }


def read_env_file(path: str) -> list[str]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise errdefs.NotFound(f"cannot read --env-file {path}: {exc.strerror}") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def spec_opts(args: argparse.Namespace) -> list[SpecOpt]:
    """The spec options the flags ask for, in ctr's order (image config comes first)."""
    opts: list[SpecOpt] = []
    if args.command:
        opts.append(oci.with_process_args(*args.command))
    env = (read_env_file(args.env_file) if args.env_file else []) + list(args.env)
    if env:
        opts.append(oci.with_env(env))
    if args.cwd:
        opts.append(oci.with_process_cwd(args.cwd))
    if args.user:
        opts.append(oci.with_user(args.user))
    if args.mount:
        opts.append(oci.with_mounts([parse_mount(m) for m in args.mount]))
    if args.net_host:
        opts.append(oci.with_host_network)
    if args.hostname:
        opts.append(oci.with_hostname(args.hostname))
    if args.read_only:
        opts.append(oci.with_readonly_rootfs)
    if args.seccomp:
        opts.append(oci.with_seccomp_default)
    if args.privileged:
        opts.append(oci.with_privileged)
    if args.memory_limit:
        opts.append(oci.with_memory_limit(args.memory_limit))
    if args.cpus:
        opts.append(oci.with_cpus(args.cpus))
    if args.rlimit_nofile:
        opts.append(oci.with_rlimit("RLIMIT_NOFILE", args.rlimit_nofile, args.rlimit_nofile))
    if args.cap_add:
        opts.append(oci.with_added_capabilities(args.cap_add))
    if args.cap_drop:
        opts.append(oci.with_dropped_capabilities(args.cap_drop))
    return opts


async def create_container(client: Client, args: argparse.Namespace) -> Container:
    """The container the flags describe; NotFound says how to get a missing image."""
    try:
        image = await client.images.get(args.image)
    except errdefs.NotFound:
        raise errdefs.NotFound(
            f"image {args.image!r} not found in namespace {client.namespace!r}: pull it first "
            f"(pyctr images pull {args.image})"
        ) from None
    options = oci_pb2.Options(binary_name=args.runc_binary) if args.runc_binary else None
    return await client.new_container(
        args.id,
        image,
        *spec_opts(args),
        labels=parse_labels(args.label),
        runtime=args.runtime,
        runtime_options=options,
        snapshotter=args.snapshotter,
        terminal=args.tty,
    )

"""`pycontainerd`: run the daemon, or print its default config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from pycontainerd import CONTAINERD_COMPAT_VERSION, __version__, config, errdefs, plugin
from pycontainerd.builtins import load_builtin_plugins
from pycontainerd.heap import tune_allocator
from pycontainerd.rlimits import raise_open_files_limit
from pycontainerd.server import Daemon

LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pycontainerd",
        description="A containerd-compatible container supervisor. Point ctr at its socket: "
        "ctr -a /run/pycontainerd/pycontainerd.sock version",
    )
    parser.add_argument("-c", "--config", type=Path, help="path to the TOML config file")
    parser.add_argument("--root", type=Path, help="where persistent data lives")
    parser.add_argument("--state", type=Path, help="where runtime state lives")
    parser.add_argument("-a", "--address", help="the gRPC socket path")
    parser.add_argument("-l", "--log-level", choices=LOG_LEVELS, help="log level")
    parser.add_argument(
        "-v",
        "--version",
        action="version",
        version=f"pycontainerd {__version__} (containerd API {CONTAINERD_COMPAT_VERSION})",
    )
    sub = parser.add_subparsers(dest="command")
    cfg = sub.add_parser("config", help="information on the config")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    cfg_sub.add_parser("default", help="print the default config")
    return parser


def _apply_flags(cfg: config.Config, args: argparse.Namespace) -> config.Config:
    if args.root:
        cfg.root = args.root.absolute()
    if args.state:
        cfg.state = args.state.absolute()
    if args.address:
        cfg.grpc.address = str(Path(args.address).absolute())
    if args.log_level:
        cfg.log_level = args.log_level
    return cfg


def _setup_logging(level: str) -> None:
    levels = {
        "trace": logging.DEBUG,
        "warn": logging.WARNING,
        "fatal": logging.CRITICAL,
        "panic": logging.CRITICAL,
    }
    logging.basicConfig(
        level=levels.get(level, getattr(logging, level.upper(), logging.INFO)),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # grpc's and asyncio's debug chatter drowns ours; keep them to warnings.
    for noisy in ("grpc", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def _serve(cfg: config.Config) -> None:
    daemon = Daemon(cfg)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    try:
        await daemon.start()
        await daemon.wait()
    finally:
        await daemon.stop()


def _print_default_config() -> None:
    load_builtin_plugins()
    defaults = {reg.uri: reg.config for reg in plugin.registrations() if reg.config}
    sys.stdout.write(config.render(config.Config(), defaults))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config":
        _print_default_config()
        return 0
    try:
        cfg = _apply_flags(config.load(args.config), args)
        _setup_logging(cfg.log_level)
        raise_open_files_limit()
        tune_allocator()  # before the first thread: arenas are made per thread
        asyncio.run(_serve(cfg))
    except errdefs.ContainerdError as exc:
        print(f"pycontainerd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

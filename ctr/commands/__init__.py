"""Command groups of pyctr, one module each; every module has ``register(subparsers)``."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from pycontainerd.client import Client

Handler = Callable[[Client, argparse.Namespace], Awaitable[int | None]]


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    handler: Handler,
    help_text: str,
    aliases: tuple[str, ...] = (),
) -> argparse.ArgumentParser:
    """A subcommand whose parsed arguments carry the coroutine that runs it."""
    parser = subparsers.add_parser(name, help=help_text, aliases=list(aliases))
    parser.set_defaults(handler=handler)
    return parser


def add_group(
    subparsers: argparse._SubParsersAction,
    name: str,
    help_text: str,
    aliases: tuple[str, ...] = (),
) -> argparse._SubParsersAction:
    """A command group (``images``, ``content``...) whose subcommands are required."""
    parser = subparsers.add_parser(name, help=help_text, aliases=list(aliases))
    group = parser.add_subparsers(title="commands", metavar="COMMAND")
    group.required = True
    return group

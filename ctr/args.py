"""Parsing the argument forms ctr accepts: labels, Go durations, credentials."""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from datetime import timedelta

from pycontainerd.durations import go_duration_seconds
from pycontainerd.errdefs import InvalidArgument


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    """``key=value`` pairs; ``key=`` (or a bare ``key``) gives an empty value."""
    labels: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label {item!r}: expected key=value")
        labels[key] = value
    return labels


def parse_duration(text: str) -> timedelta:
    """A Go duration such as ``24h``, ``1h30m`` or ``90s``."""
    return timedelta(seconds=go_duration_seconds(text))


def parse_user(value: str | None) -> tuple[str, str] | None:
    """``user:password`` for a registry; asks for the password when only a user is given."""
    if not value:
        return None
    user, colon, secret = value.partition(":")
    if not colon:
        secret = getpass.getpass(f"Password for {user}: ")
    return user, secret

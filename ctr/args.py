"""Parsing the argument forms ctr accepts: labels, Go durations, credentials."""

from __future__ import annotations

import getpass
import re
from collections.abc import Iterable
from datetime import timedelta

from pycontainerd.errdefs import InvalidArgument

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


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
    position, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise InvalidArgument(f"invalid duration {text!r}: use e.g. 24h, 30m, 1h30m, 90s")
    return timedelta(seconds=seconds)


def parse_user(value: str | None) -> tuple[str, str] | None:
    """``user:password`` for a registry; asks for the password when only a user is given."""
    if not value:
        return None
    user, colon, secret = value.partition(":")
    if not colon:
        secret = getpass.getpass(f"Password for {user}: ")
    return user, secret

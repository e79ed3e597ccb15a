"""Validation of identifiers and labels, with containerd's rules."""

from __future__ import annotations

import re

from pycontainerd import errdefs

MAX_IDENTIFIER_LENGTH = 76
MAX_LABEL_SIZE = 4096
_IDENTIFIER = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")


def validate_identifier(value: str, what: str = "identifier") -> str:
    """Namespaces, containers, leases and tasks share this rule."""
    if not value:
        raise errdefs.InvalidArgument(f"{what} must not be empty")
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise errdefs.InvalidArgument(
            f"{what} {value!r} is longer than {MAX_IDENTIFIER_LENGTH} characters"
        )
    if not _IDENTIFIER.fullmatch(value):
        raise errdefs.InvalidArgument(
            f"{what} {value!r} is not valid: use letters and digits, "
            "separated by single '.', '_' or '-' characters"
        )
    return value


def validate_labels(labels: dict[str, str], what: str = "labels") -> dict[str, str]:
    """Labels are bounded in size; empty values mean 'remove' and are dropped."""
    for key, value in labels.items():
        if len(key.encode()) + len(value.encode()) > MAX_LABEL_SIZE:
            raise errdefs.InvalidArgument(
                f"{what}: label {key[:20]!r} is larger than {MAX_LABEL_SIZE} bytes (key + value)"
            )
    return {k: v for k, v in labels.items() if v != ""}

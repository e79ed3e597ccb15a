"""Validation of identifiers and labels, with containerd's rules."""

from __future__ import annotations

import re

from pycontainerd import errdefs

MAX_IDENTIFIER_LENGTH = 76
MAX_LEASE_ID_LENGTH = 4096
MAX_LABEL_SIZE = 4096
_IDENTIFIER = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
_LEASE_ID = re.compile(r"[!-~](?:[ -~]*[!-~])?")


def _validate(value: str, what: str, longest: int, pattern: re.Pattern[str], rule: str) -> str:
    if not value:
        raise errdefs.InvalidArgument(f"{what} must not be empty")
    if len(value) > longest:
        raise errdefs.InvalidArgument(
            f"{what} {errdefs.echo(value)} is longer than {longest} characters"
        )
    if not pattern.fullmatch(value):
        raise errdefs.InvalidArgument(f"{what} {errdefs.echo(value)} is not valid: {rule}")
    return value


def validate_identifier(value: str, what: str = "identifier") -> str:
    """Namespaces, containers and tasks share this rule."""
    return _validate(
        value,
        what,
        MAX_IDENTIFIER_LENGTH,
        _IDENTIFIER,
        "use letters and digits, separated by single '.', '_' or '-' characters",
    )


def validate_lease_id(value: str) -> str:
    """Lease ids: printable ASCII, without ".." path segments; wider than identifiers.

    Clients make lease ids with containerd's ``leases.WithRandomID`` (a number,
    "-" and four characters of URL-safe base64, which may begin or end with "-"
    or "_"), and ``ctr images mount`` names its lease after the target path.
    Control characters, non-ASCII text, surrounding spaces, ".." and ids longer
    than a path are refused.
    """
    _validate(
        value,
        "lease id",
        MAX_LEASE_ID_LENGTH,
        _LEASE_ID,
        "use printable ASCII characters, not beginning or ending with a space",
    )
    if ".." in value.split("/"):
        raise errdefs.InvalidArgument(
            f"lease id {errdefs.echo(value)} is not valid: it must not have '..' path segments"
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

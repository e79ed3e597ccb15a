"""Error kinds specific to talking to registries, and the HTTP status mapping.

The shared kinds live in :mod:`pycontainerd.errdefs`; the ones here narrow
them with registry-specific meaning.
"""

from __future__ import annotations

import json

import requests

from pycontainerd import errdefs
from pycontainerd.errdefs import (
    ContainerdError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NotImplemented_,
    OutOfRange,
    ResourceExhausted,
    Unavailable,
)


class Unauthenticated(errdefs.Unauthenticated):
    """The registry wants credentials we do not have, or rejected the ones we sent."""


class PermissionDenied(errdefs.PermissionDenied):
    """The registry knows who we are and refuses the operation."""


class DataLoss(errdefs.DataLoss):
    """Content read back does not match its descriptor (digest or size)."""


def registry_error_detail(response: requests.Response) -> str:
    """The registry's own explanation from its JSON error body, if any."""
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for error in errors:
        if isinstance(error, dict):
            code = error.get("code", "")
            message = error.get("message", "")
            parts.append(f"{code}: {message}" if code else str(message))
    return "; ".join(parts)


def error_for_status(response: requests.Response, what: str, host: str) -> ContainerdError:
    """Map a failed registry response to our error kinds.

    ``what`` names the object the request was about (a reference or a digest),
    so the message tells the user which one failed.
    """
    status = response.status_code
    detail = registry_error_detail(response)
    suffix = f" ({detail})" if detail else ""
    if status == 401:
        return Unauthenticated(
            f"{what}: unauthorized: {host} requires authentication{suffix}; pass credentials "
            f"(pyctr ... --user USER[:PASSWORD]) or run `docker login {host}`"
        )
    if status == 403:
        return PermissionDenied(
            f"{what}: denied by {host}{suffix}; check that the account may access this repository"
        )
    if status == 404:
        return NotFound(f"{what}: not found on {host}{suffix}")
    if status == 405:
        return NotImplemented_(f"{what}: {host} does not allow this operation{suffix}")
    if status == 416:
        return OutOfRange(f"{what}: {host} cannot serve the requested range{suffix}")
    if status == 429:
        return ResourceExhausted(f"{what}: {host} is rate limiting requests{suffix}; retry later")
    if status >= 500:
        return Unavailable(f"{what}: {host} failed with HTTP {status}{suffix}; retry later")
    if status == 400:
        return InvalidArgument(f"{what}: {host} rejected the request{suffix}")
    return FailedPrecondition(f"{what}: unexpected HTTP {status} from {host}{suffix}")


def error_for_connection(exc: requests.RequestException, host: str, scheme: str) -> Unavailable:
    """Map a transport failure to Unavailable, suggesting plain HTTP where it likely helps."""
    hint = ""
    if scheme == "https":
        hint = "; if the registry serves plain HTTP, pass --plain-http"
    if isinstance(exc, requests.exceptions.SSLError):
        return Unavailable(f"TLS handshake with {host} failed: {exc}{hint}")
    if isinstance(exc, requests.exceptions.Timeout):
        return Unavailable(f"{host} did not answer in time: {exc}")
    return Unavailable(f"cannot reach registry {host}: {exc}; is it running?{hint}")

"""Status codes carried in ttrpc responses, and their mapping to our errors.

ttrpc sends a google.rpc.Status (code, message) with every response; Go peers
turn a non-zero code into a gRPC status error. We use the numeric codes from
``pycontainerd.errdefs.Code`` and never import grpc (it costs ~70 ms at start-up,
which the shim pays on every container start).
"""

from __future__ import annotations

import asyncio

from pycontainerd import errdefs
from pycontainerd.errdefs import Code

# Text Go's ttrpc uses for a connection that is gone (ttrpc.ErrClosed); containerd
# matches on it, so keep the wording.
CLOSED_MESSAGE = "ttrpc: closed"
DEADLINE_MESSAGE = "context deadline exceeded"
CANCELED_MESSAGE = "context canceled"


def status_of(exc: BaseException) -> tuple[Code, str]:
    """The (code, message) a handler's exception is reported with.

    Our errdefs kinds keep their code; OS errors that have an obvious meaning map
    like Go's ttrpc ``convertCode``; anything else is UNKNOWN with its message.
    """
    if isinstance(exc, errdefs.ContainerdError):
        return exc.code, str(exc)
    if isinstance(exc, TimeoutError):
        return Code.DEADLINE_EXCEEDED, str(exc) or DEADLINE_MESSAGE
    if isinstance(exc, asyncio.CancelledError):
        return Code.CANCELLED, CANCELED_MESSAGE
    if isinstance(exc, PermissionError):
        return Code.PERMISSION_DENIED, str(exc)
    if isinstance(exc, EOFError):
        return Code.OUT_OF_RANGE, str(exc)
    return errdefs.code_of(exc), str(exc) or type(exc).__name__


def error_from_status(code: int, message: str) -> errdefs.ContainerdError:
    """The error to raise for a non-OK status received from a peer.

    ``errdefs.from_code`` has no class for some codes (INTERNAL, PERMISSION_DENIED,
    ...); the returned error then still reports the code the peer sent.
    """
    err = errdefs.from_code(code, message)
    if type(err) is errdefs.ContainerdError:
        try:
            err.code = Code(code)
        except ValueError:
            err.code = Code.UNKNOWN
    return err


def closed_error() -> errdefs.Unavailable:
    """The error for calls on (or pending on) a connection that has gone away."""
    return errdefs.Unavailable(CLOSED_MESSAGE)

"""Error kinds shared by every layer, and their one mapping to status codes.

Stores raise these; services never pick status codes themselves. The classes
mirror containerd's errdefs package so that clients see the same codes
containerd would send for the same mistake. The codes are the numeric gRPC
status codes (also used by ttrpc); this module does not import grpc so the
shim can use it without paying for grpc's import.
"""

from __future__ import annotations

import enum
import errno


class Code(enum.IntEnum):
    """gRPC status codes (google.rpc.Code), shared by gRPC and ttrpc."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class ContainerdError(Exception):
    """Base of all errors that carry a status code."""

    code: Code = Code.UNKNOWN
    errno: int | None = None  # set where the error comes from a failed syscall


class NotFound(ContainerdError):
    code = Code.NOT_FOUND


class AlreadyExists(ContainerdError):
    code = Code.ALREADY_EXISTS


class InvalidArgument(ContainerdError):
    code = Code.INVALID_ARGUMENT


class FailedPrecondition(ContainerdError):
    code = Code.FAILED_PRECONDITION


class Unavailable(ContainerdError):
    code = Code.UNAVAILABLE


class NotImplemented_(ContainerdError):  # noqa: N801 - avoid shadowing the builtin
    code = Code.UNIMPLEMENTED


class Aborted(ContainerdError):
    code = Code.ABORTED


class Canceled(ContainerdError):
    code = Code.CANCELLED


class DeadlineExceeded(ContainerdError):
    code = Code.DEADLINE_EXCEEDED


class OutOfRange(ContainerdError):
    code = Code.OUT_OF_RANGE


class ResourceExhausted(ContainerdError):
    code = Code.RESOURCE_EXHAUSTED


class PermissionDenied(ContainerdError):
    code = Code.PERMISSION_DENIED


class Unauthenticated(ContainerdError):
    code = Code.UNAUTHENTICATED


class Internal(ContainerdError):
    code = Code.INTERNAL


class DataLoss(ContainerdError):
    code = Code.DATA_LOSS


_BY_CODE: dict[Code, type[ContainerdError]] = {
    cls.code: cls
    for cls in (
        NotFound,
        AlreadyExists,
        InvalidArgument,
        FailedPrecondition,
        Unavailable,
        NotImplemented_,
        Aborted,
        Canceled,
        DeadlineExceeded,
        OutOfRange,
        ResourceExhausted,
        PermissionDenied,
        Unauthenticated,
        Internal,
        DataLoss,
    )
}


def from_code(code: int, message: str) -> ContainerdError:
    """Turn a status received from a peer back into our error kind."""
    try:
        kind = _BY_CODE.get(Code(code), ContainerdError)
    except ValueError:
        kind = ContainerdError
    return kind(message)


#: A full file system or quota: a resource, not a bug (pycontainerd/diskspace.py).
FULL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: Out of file descriptors (this process's, or the system's), or out of disk.
_EXHAUSTED_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE}) | FULL_DISK_ERRNOS
#: SQLite's primary result code for "database or disk is full".
SQLITE_FULL = 13


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC/EDQUOT and for SQLite's "database or disk is full"."""
    if isinstance(exc, OSError):
        return exc.errno in FULL_DISK_ERRNOS
    # sqlite3.Error carries its result code; duck-typed so that the shim, which
    # imports this module, does not load sqlite3.
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == SQLITE_FULL


def code_of(exc: BaseException) -> Code:
    """The status code an exception should be reported with."""
    if isinstance(exc, ContainerdError):
        return exc.code
    if isinstance(exc, OSError) and exc.errno in _EXHAUSTED_ERRNOS:
        return Code.RESOURCE_EXHAUSTED
    if is_disk_full(exc):
        return Code.RESOURCE_EXHAUSTED
    if isinstance(exc, FileNotFoundError):
        return Code.NOT_FOUND
    if isinstance(exc, FileExistsError):
        return Code.ALREADY_EXISTS
    return Code.UNKNOWN


# The words containerd's errdefs end its messages with, per code ("<what>: not
# found"); clients written against containerd match them in the text.
_SUFFIXES: dict[Code, str] = {
    Code.INVALID_ARGUMENT: "invalid argument",
    Code.NOT_FOUND: "not found",
    Code.ALREADY_EXISTS: "already exists",
    Code.PERMISSION_DENIED: "permission denied",
    Code.RESOURCE_EXHAUSTED: "resource exhausted",
    Code.FAILED_PRECONDITION: "failed precondition",
    Code.ABORTED: "aborted",
    Code.OUT_OF_RANGE: "out of range",
    Code.UNIMPLEMENTED: "not implemented",
    Code.INTERNAL: "internal",
    Code.UNAVAILABLE: "unavailable",
    Code.DATA_LOSS: "data loss",
    Code.UNAUTHENTICATED: "unauthenticated",
}


#: Characters of a value that an error message quotes (`echo`).
ECHO_LIMIT = 100
#: Bytes of a status message once encoded for the wire (gRPC's status limit is 8 KiB).
MAX_STATUS_MESSAGE = 4096


def echo(value: str, limit: int = ECHO_LIMIT) -> str:
    """`value` quoted for an error message, cut to `limit` characters when longer."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def _wire_size(ch: str) -> int:
    """Bytes of `ch` in a grpc-message header (percent-encoded outside printable ASCII)."""
    return 1 if " " <= ch <= "~" and ch != "%" else 3 * len(ch.encode("utf-8", "replace"))


def status_message(exc: BaseException) -> str:
    """The status message for `exc`: its text, cut to fit the status limit, then
    containerd's words for its code ("...: not found").

    Clients written against containerd match those words; containerd's Go
    client strips the suffix before adding its own, so Go clients read the
    same text either way.
    """
    text = _fit(str(exc) or type(exc).__name__)
    suffix = _SUFFIXES.get(code_of(exc))
    if suffix is None or text == suffix or text.endswith(": " + suffix):
        return text
    return f"{text}: {suffix}"


def _fit(message: str) -> str:
    size = 0
    for index, ch in enumerate(message):
        size += _wire_size(ch)
        if size > MAX_STATUS_MESSAGE:
            return f"{message[:index]}... ({len(message) - index} more characters)"
    return message

from __future__ import annotations

import json

import pytest
import requests

from pycontainerd.errdefs import (
    Code,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NotImplemented_,
    OutOfRange,
    ResourceExhausted,
    Unavailable,
)
from pycontainerd.remotes.errors import PermissionDenied, Unauthenticated, error_for_status


def _response(status: int, errors: list[dict] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps({"errors": errors}).encode() if errors else b""
    return response


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (400, InvalidArgument, Code.INVALID_ARGUMENT),
        (401, Unauthenticated, Code.UNAUTHENTICATED),
        (403, PermissionDenied, Code.PERMISSION_DENIED),
        (404, NotFound, Code.NOT_FOUND),
        (405, NotImplemented_, Code.UNIMPLEMENTED),
        (409, FailedPrecondition, Code.FAILED_PRECONDITION),
        (416, OutOfRange, Code.OUT_OF_RANGE),
        (429, ResourceExhausted, Code.RESOURCE_EXHAUSTED),
        (503, Unavailable, Code.UNAVAILABLE),
    ],
)
def test_status_maps_to_error_kind(status: int, kind: type, code: Code) -> None:
    error = error_for_status(_response(status), "reg.example.com/app:1", "reg.example.com")
    assert isinstance(error, kind) and error.code == code
    assert "reg.example.com/app:1" in str(error)


def test_registry_error_detail_is_included() -> None:
    response = _response(404, [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}])
    error = error_for_status(response, "r/app:1", "r")
    assert "MANIFEST_UNKNOWN: manifest unknown" in str(error)

"""``-info``: what this shim runs, for containerd 2's ``ctr plugins inspect-runtime``.

containerd runs ``<shim> -info`` with the runtime options (an Any) on stdin and
reads a RuntimeInfo from stdout: the shim's name and version, the options it
was given, and the OCI runtime's ``features`` document (``runc features``),
packed under the name containerd's typeurl registers for it.
"""

from __future__ import annotations

import shutil
import subprocess

from google.protobuf import any_pb2

from pycontainerd import __version__, errdefs
from pycontainerd.api.types import introspection_pb2
from pycontainerd.shim_v2.options import decode_serialized_options

#: The runtime name containerd's runc shim reports (ours stands in for it).
RUNTIME_NAME = "io.containerd.runc.v2"
DEFAULT_RUNTIME_BINARY = "runc"
FEATURES_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/features/Features"
FEATURES_TIMEOUT = 10


def runtime_info(options_data: bytes) -> introspection_pb2.RuntimeInfo:
    options = decode_serialized_options(options_data)
    info = introspection_pb2.RuntimeInfo(
        name=RUNTIME_NAME,
        version=introspection_pb2.RuntimeVersion(
            version=__version__, revision=f"pycontainerd-{__version__}"
        ),
    )
    if options_data:
        info.options.CopyFrom(any_pb2.Any.FromString(options_data))
    binary = options.binary_name or DEFAULT_RUNTIME_BINARY
    path = shutil.which(binary)
    if path is None:
        raise errdefs.NotFound(f"the OCI runtime {binary!r} is not on PATH")
    features = _features(path)
    if features is not None:
        info.features.CopyFrom(any_pb2.Any(type_url=FEATURES_TYPE_URL, value=features))
    return info


def _features(path: str) -> bytes | None:
    """``<runtime> features`` (JSON), or None for a runtime without the command (as containerd)."""
    try:
        done = subprocess.run(
            [path, "features"], capture_output=True, timeout=FEATURES_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 and done.stdout.strip() else None

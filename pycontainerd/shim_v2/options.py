"""Runtime options a client sends with Create, and their copy in the bundle.

containerd packs ``containerd.runc.v1.Options`` in the request's ``options``
Any; older clients send ``containerd.linux.runc.RuncOptions`` (runtime,
runtime_root, criu_path, systemd_cgroup). Both become `RuntimeOptions`. Like
containerd's runc shim, the options are also written to ``options.json`` and the
binary name to ``runtime`` in the bundle, so that ``delete`` (run after the shim
died) can find the runtime and its root.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from pycontainerd import errdefs
from pycontainerd.api.runtime.v2.runc.options import oci_pb2
from pycontainerd.oci.runtime import DEFAULT_BINARY, DEFAULT_ROOT
from pycontainerd.shim_v2.contract import RUNC_ROOT_ENV

RUNC_OPTIONS_TYPE = "containerd.runc.v1.Options"
LEGACY_OPTIONS_TYPE = "containerd.linux.runc.RuncOptions"
#: Overrides DEFAULT_ROOT as the base of the runtime root when the client names none.
ROOT_ENV = RUNC_ROOT_ENV

OPTIONS_FILE = "options.json"
RUNTIME_FILE = "runtime"


@dataclass(frozen=True)
class RuntimeOptions:
    """What the shim needs from the options (field names as containerd's JSON uses)."""

    binary_name: str = ""
    root: str = ""
    systemd_cgroup: bool = False
    no_pivot_root: bool = False
    no_new_keyring: bool = False
    io_uid: int = 0
    io_gid: int = 0
    criu_path: str = ""
    shim_cgroup: str = ""

    @property
    def binary(self) -> str:
        return self.binary_name or DEFAULT_BINARY

    def runtime_root(self, namespace: str) -> str:
        """The runtime's --root: ``<root>/<namespace>``, the root given or the default.

        containerd's shim adds the namespace to a given root too: dockerd's root
        ``<exec-root>/runtime-runc`` holds its containers' state in ``moby/``.
        """
        return os.path.join(self.root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT, namespace)


def decode_options(value: any_pb2.Any | None) -> RuntimeOptions:
    """Options from a Create request's Any (empty: defaults)."""
    if value is None or not value.type_url:
        return RuntimeOptions()
    name = value.type_url.rsplit("/", 1)[-1]
    if name == RUNC_OPTIONS_TYPE:
        message: Message = _parse(oci_pb2.Options, value, name)
        return RuntimeOptions(**{f.name: getattr(message, f.name) for f in fields(RuntimeOptions)})
    if name == LEGACY_OPTIONS_TYPE:
        legacy = _parse(legacy_options_class(), value, name)
        return RuntimeOptions(
            binary_name=legacy.runtime,
            root=legacy.runtime_root,
            criu_path=legacy.criu_path,
            systemd_cgroup=legacy.systemd_cgroup,
        )
    raise errdefs.InvalidArgument(
        f"unsupported runtime options type {value.type_url!r}; send {RUNC_OPTIONS_TYPE}"
    )


def decode_serialized_options(data: bytes) -> RuntimeOptions:
    """Options from a serialized ``google.protobuf.Any`` (what ``start`` reads on stdin)."""
    if not data:
        return RuntimeOptions()
    try:
        value = any_pb2.Any.FromString(data)
    except DecodeError as exc:
        raise errdefs.InvalidArgument(f"runtime options are not a valid Any: {exc}") from exc
    return decode_options(value)


def _parse(cls: type[Message], value: any_pb2.Any, name: str) -> Message:
    try:
        return cls.FromString(value.value)
    except DecodeError as exc:
        raise errdefs.InvalidArgument(f"runtime options are not a valid {name}: {exc}") from exc


_legacy_class: type[Message] | None = None


def legacy_options_class() -> type[Message]:
    """``containerd.linux.runc.RuncOptions``, built at run time (no .proto of ours needed)."""
    global _legacy_class
    if _legacy_class is None:
        proto = descriptor_pb2.FileDescriptorProto(
            name="pycontainerd/shim_v2/legacy_runc_options.proto",
            package="containerd.linux.runc",
            syntax="proto3",
        )
        message = proto.message_type.add(name="RuncOptions")
        field_type = descriptor_pb2.FieldDescriptorProto
        for number, (field_name, kind) in enumerate(
            (
                ("runtime", field_type.TYPE_STRING),
                ("runtime_root", field_type.TYPE_STRING),
                ("criu_path", field_type.TYPE_STRING),
                ("systemd_cgroup", field_type.TYPE_BOOL),
            ),
            start=1,
        ):
            message.field.add(
                name=field_name, number=number, type=kind, label=field_type.LABEL_OPTIONAL
            )
        pool = descriptor_pool.DescriptorPool()
        pool.Add(proto)
        _legacy_class = GetMessageClass(
            pool.FindMessageTypeByName("containerd.linux.runc.RuncOptions")
        )
    return _legacy_class


def write_options(bundle: str, options: RuntimeOptions) -> None:
    """Record the options in the bundle for a later ``delete``."""
    with open(os.path.join(bundle, OPTIONS_FILE), "w", encoding="utf-8") as f:
        json.dump(asdict(options), f)
    with open(os.path.join(bundle, RUNTIME_FILE), "w", encoding="utf-8") as f:
        f.write(options.binary_name)


def read_options(bundle: str) -> RuntimeOptions:
    """The options `write_options` recorded; defaults when there are none."""
    try:
        with open(os.path.join(bundle, OPTIONS_FILE), encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return RuntimeOptions()
    except ValueError as exc:
        raise errdefs.InvalidArgument(f"{bundle}/{OPTIONS_FILE} is not JSON: {exc}") from exc
    known = {f.name for f in fields(RuntimeOptions)}
    return RuntimeOptions(**{k: v for k, v in data.items() if k in known})

"""What the CRI plugin knows of its pods and containers, and how it survives restarts.

Each sandbox and container is a container record of namespace ``k8s.io`` (the
pause container for a sandbox), as in containerd; the CRI's own view of it is
JSON in the record's extension ``io.cri-containerd.{sandbox,container}.metadata``
(the request's config is kept as protobuf bytes inside). The in-memory index
holds the same objects and the names in use.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pycontainerd import errdefs
from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri

NAMESPACE = "k8s.io"
SANDBOX_EXTENSION = "io.cri-containerd.sandbox.metadata"
CONTAINER_EXTENSION = "io.cri-containerd.container.metadata"
EXTENSION_TYPE = "pycontainerd.cri.v1.Metadata"
KIND_LABEL = "io.cri-containerd.kind"
SANDBOX_ID_LABEL = "io.kubernetes.sandbox.id"


def new_id() -> str:
    return secrets.token_hex(32)


def now_ns() -> int:
    return time.time_ns()


@dataclass
class Sandbox:
    id: str
    name: str  # the reserved, unique name
    config: cri.PodSandboxConfig
    runtime_handler: str
    created_at: int
    netns: str = ""  # pinned network namespace; "" for host network
    ip: str = ""
    additional_ips: list[str] = field(default_factory=list)
    pid: int = 0
    ready: bool = False
    cni_result: dict[str, Any] = field(default_factory=dict)

    @property
    def host_network(self) -> bool:
        opts = self.config.linux.security_context.namespace_options
        return opts.network == cri.NODE

    def to_json(self) -> bytes:
        data = asdict(self)
        data["config"] = base64.b64encode(self.config.SerializeToString()).decode()
        return json.dumps(data).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Sandbox:
        data = json.loads(raw)
        data["config"] = cri.PodSandboxConfig.FromString(base64.b64decode(data["config"]))
        return cls(**data)


@dataclass
class Container:
    id: str
    name: str
    sandbox_id: str
    config: cri.ContainerConfig
    image_ref: str  # the image id (config digest)
    image_name: str  # as the request named it
    log_path: str  # absolute, "" without logs
    created_at: int
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    pid: int = 0
    state: int = cri.CONTAINER_CREATED
    stdio_dir: str = ""
    cgroup: str = ""  # linux.cgroupsPath
    user: list[int] = field(default_factory=list)  # uid, gid, supplementary groups...
    image_volumes: dict[str, str] = field(default_factory=dict)  # mount index -> image id

    def to_json(self) -> bytes:
        data = asdict(self)
        data["config"] = base64.b64encode(self.config.SerializeToString()).decode()
        return json.dumps(data).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Container:
        data = json.loads(raw)
        data["config"] = cri.ContainerConfig.FromString(base64.b64decode(data["config"]))
        return cls(**data)


def sandbox_name(meta: cri.PodSandboxMetadata) -> str:
    return "_".join(("k8s_POD", meta.name, meta.namespace, meta.uid, str(meta.attempt)))


def container_name(meta: cri.ContainerMetadata, pod: cri.PodSandboxMetadata) -> str:
    return "_".join(("k8s", meta.name, pod.name, pod.namespace, pod.uid, str(meta.attempt)))


class Index:
    """Sandboxes and containers by id, with unique names and id-prefix lookup."""

    def __init__(self) -> None:
        self.sandboxes: dict[str, Sandbox] = {}
        self.containers: dict[str, Container] = {}
        self._names: dict[str, str] = {}

    def reserve(self, name: str, object_id: str) -> None:
        holder = self._names.get(name)
        if holder is not None and holder != object_id:
            raise errdefs.AlreadyExists(f"name {name!r} is reserved for {holder!r}")
        self._names[name] = object_id

    def release(self, name: str) -> None:
        self._names.pop(name, None)

    def _find(self, table: dict[str, Any], what: str, wanted: str) -> Any:
        if not wanted:
            raise errdefs.InvalidArgument(f"{what} id is required")
        if wanted in table:
            return table[wanted]
        matches = [v for k, v in table.items() if k.startswith(wanted)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise errdefs.InvalidArgument(f"{what} id prefix {wanted!r} is ambiguous")
        raise errdefs.NotFound(f"{what} {wanted!r} not found")

    def sandbox(self, wanted: str) -> Sandbox:
        found: Sandbox = self._find(self.sandboxes, "sandbox", wanted)
        return found

    def container(self, wanted: str) -> Container:
        found: Container = self._find(self.containers, "container", wanted)
        return found

    def containers_of(self, sandbox_id: str) -> list[Container]:
        return [c for c in self.containers.values() if c.sandbox_id == sandbox_id]

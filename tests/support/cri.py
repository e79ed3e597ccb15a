"""A pycontainerd serving CRI inside a network namespace of the test's own, and crictl.

The daemon runs in the namespace (``nsenter --net``), so the host side of every
pod network (the CNI bridge, routes, portmap's firewall rules) lands there and
never in the host's namespace. The registry on the host's loopback is relayed
into the namespace at the same address for server-side pulls. Images reach
namespace ``k8s.io`` by CRI PullImage or, for the set-up, through ctr.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.support.cli import CommandLine
from tests.support.daemon import DaemonProcess
from tests.support.images import build_image, busybox_entries, push_image
from tests.support.netns import NetNamespace
from tests.support.registry import TestRegistry

CNI_BIN_DIR = "/usr/lib/cni"
POD_SUBNET = "10.88.0.0/24"
PAUSE_REPO = "pycontainerd-test/pause"


def push_pause(registry: TestRegistry) -> str:
    """A pause image built from busybox-static: sleeps until killed."""
    image = build_image([busybox_entries()], cmd=("/bin/sleep", "2147483647"))
    return push_image(registry, image, PAUSE_REPO, "3.10").ref


def cni_conflist(base: Path, bridge: str) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "pycontainerd-test",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(base / "cni-ipam"),
                    "ranges": [[{"subnet": POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


class Crictl(CommandLine):
    """cri-tools' crictl (scripts/go-tools.txt) against one daemon's socket."""

    name = "crictl"

    def __init__(self, address: Path, config: Path) -> None:
        endpoint = f"unix://{address}"
        config.write_text(
            f"runtime-endpoint: {endpoint}\nimage-endpoint: {endpoint}\ntimeout: 60\n"
        )
        self.argv = ["crictl", "--config", str(config)]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*self.argv, *args], capture_output=True, timeout=timeout)

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(args[0], "-o", "json", *args[1:]))


class CRIEnv:
    """The daemon, its namespace and CNI config, and crictl pointed at it."""

    def __init__(
        self,
        registry: TestRegistry,
        extra_config: str = "",
        more_registries: tuple[TestRegistry, ...] = (),
    ) -> None:
        self.registry = registry
        self.registries = (registry, *more_registries)
        self.base = Path(tempfile.mkdtemp(prefix="pcri-"))
        self.netns = NetNamespace("pcri")
        self.cni_dir = self.base / "cni"
        self.logs = self.base / "logs"
        self.pause_ref = push_pause(registry)
        self.extra_config = extra_config
        self.daemon: DaemonProcess | None = None

    def config(self) -> str:
        return (
            '[plugins."io.containerd.grpc.v1.cri"]\n'
            f'  sandbox_image = "{self.pause_ref}"\n'
            + self.extra_config
            + f'  [plugins."io.containerd.grpc.v1.cri".cni]\n'
            f'    bin_dir = "{CNI_BIN_DIR}"\n'
            f'    conf_dir = "{self.cni_dir}"\n'
            + "".join(
                f'  [plugins."io.containerd.grpc.v1.cri".registry.configs."{r.host}"]\n'
                "    plain_http = true\n"
                for r in self.registries
            )
        )

    def __enter__(self) -> CRIEnv:
        self.netns.__enter__()
        try:
            for registry in self.registries:
                self.netns.relay(registry.port)
            self.cni_dir.mkdir()
            bridge = "pcri" + uuid.uuid4().hex[:6]
            (self.cni_dir / "10-test.conflist").write_text(
                json.dumps(cni_conflist(self.base, bridge))
            )
            (self.base / "d").mkdir()
            self.daemon = DaemonProcess(
                base=self.base / "d",
                extra_config=self.config(),
                command_prefix=self.netns.argv([]),
            )
            self.daemon.start()
            self.crictl = Crictl(self.daemon.address, self.base / "crictl.yaml")
            self.ctr_pull(self.pause_ref)
        except BaseException:
            self.close()
            raise
        return self

    def ctr_pull(self, ref: str) -> None:
        """Into namespace k8s.io with ctr (unpacked), for set-ups that must not use CRI pull."""
        assert self.daemon is not None
        subprocess.run(
            ["ctr", "-a", str(self.daemon.address), "-n", "k8s.io", "images", "pull"]
            + ["--plain-http", ref],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def restart_after_kill9(self) -> None:
        assert self.daemon is not None
        self.daemon.kill9()
        self.daemon.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            if self.daemon is not None and self.daemon.proc and self.daemon.proc.poll() is None:
                with suppress(OSError, subprocess.SubprocessError):
                    self.crictl.run("rm", "-fa", timeout=60)
                with suppress(OSError, subprocess.SubprocessError):
                    self.crictl.run("rmp", "-fa", timeout=60)
        finally:
            if self.daemon is not None:
                self.daemon.cleanup()
            self.netns.close()
            shutil.rmtree(self.base, ignore_errors=True)

    # -- helpers for tests ---------------------------------------------------------------

    def pod_config(self, name: str, host_network: bool = False, **extra: Any) -> Path:
        config: dict[str, Any] = {
            "metadata": {"name": name, "namespace": "default", "uid": uuid.uuid4().hex},
            "log_directory": str(self.logs / name),
            "linux": {},
        }
        if host_network:
            config["linux"] = {"security_context": {"namespace_options": {"network": 2}}}
        config.update(extra)
        path = self.base / f"pod-{name}-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(config))
        return path

    def container_config(self, name: str, image: str, command: list[str], **extra: Any) -> Path:
        config: dict[str, Any] = {
            "metadata": {"name": name},
            "image": {"image": image},
            "command": command,
            "log_path": f"{name}.log",
        }
        config.update(extra)
        path = self.base / f"ctr-{name}-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(config))
        return path

    def in_netns(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        return self.netns.run(*argv, timeout=timeout)


@contextmanager
def cri_env(
    registry: TestRegistry, extra_config: str = "", more_registries: tuple[TestRegistry, ...] = ()
) -> Iterator[CRIEnv]:
    with CRIEnv(registry, extra_config, more_registries) as env:
        yield env

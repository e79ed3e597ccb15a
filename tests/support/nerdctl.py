"""nerdctl 2.x on a test's own pycontainerd, all of it inside a test network namespace.

nerdctl sets up container networks (CNI bridge, port mappings, iptables) from
an OCI hook that the runtime runs in the shim's network namespace, which is
the daemon's. So :func:`nerdctl_stack` starts the daemon and every nerdctl
command inside a :class:`~tests.support.netns.NetNamespace`, with nerdctl's data
root, CNI configuration, hosts dir and config file under the daemon's temp dir,
and relays the test registry's loopback port into the namespace. Cleanup
removes every container (their networks go with the namespace), stops the
daemon and deletes the namespace, also after a failed test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cli import CommandLine
from tests.support.daemon import DaemonProcess
from tests.support.netns import NetNamespace

#: Where Debian's containernetworking-plugins package puts the CNI plugins.
CNI_PATH = "/usr/lib/cni"


def nerdctl_binary() -> str:
    found = shutil.which("nerdctl")
    if found is None:
        raise RuntimeError("nerdctl is not built: run scripts/go-tools.sh nerdctl")
    return found


class Nerdctl(CommandLine):
    """Runs nerdctl against one daemon, inside the daemon's network namespace."""

    name = "nerdctl"

    def __init__(
        self, address: Path, base: Path, netns: NetNamespace, namespace: str = "default"
    ) -> None:
        self.binary = nerdctl_binary()
        self.address = address
        self.base = base
        self.netns = netns
        self.namespace = namespace
        for directory in ("data", "cni", "certs.d", "home"):
            (base / directory).mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "NERDCTL_TOML": str(self.base / "nerdctl.toml"),  # none: not the host's
            "HOME": str(self.base / "home"),
            "CONTAINERD_ADDRESS": "",
            "CONTAINERD_NAMESPACE": "",
        }

    def argv(self, *args: str) -> list[str]:
        return self.netns.argv(
            [
                self.binary,
                "--address", str(self.address),
                "--namespace", self.namespace,
                "--data-root", str(self.base / "data"),
                "--cni-path", CNI_PATH,
                "--cni-netconfpath", str(self.base / "cni"),
                "--hosts-dir", str(self.base / "certs.d"),
                "--cgroup-manager", "cgroupfs",
                "--insecure-registry",
                *args,
            ]
        )  # fmt: skip

    def run(
        self, *args: str, timeout: float = 120, input: bytes | None = None, **kwargs: Any
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.argv(*args), capture_output=True, timeout=timeout, input=input, env=self.env
        )


@dataclass
class NerdctlStack:
    """A daemon and nerdctl, both in `netns`."""

    netns: NetNamespace
    daemon: DaemonProcess
    nerdctl: Nerdctl

    def inside(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        """A host program run in the test's network namespace (a client of a mapped port)."""
        return self.netns.run(*argv, timeout=timeout)


@contextlib.contextmanager
def nerdctl_stack(relay_ports: tuple[int, ...] = ()) -> Iterator[NerdctlStack]:
    with NetNamespace() as netns:
        for port in relay_ports:
            netns.relay(port)
        daemon = DaemonProcess(command_prefix=netns.argv([]))
        try:
            daemon.start()
            nerdctl = Nerdctl(daemon.address, daemon.base / "nerdctl", netns)
            try:
                yield NerdctlStack(netns, daemon, nerdctl)
            finally:
                _remove_containers(nerdctl)
        finally:
            daemon.cleanup()


def _remove_containers(nerdctl: Nerdctl) -> None:
    """Whatever a test left: every container, force-removed (its CNI teardown runs)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        listed = nerdctl.run("ps", "-aq", timeout=60)
        ids = listed.stdout.decode().split()
        if ids:
            nerdctl.run("rm", "-f", *ids, timeout=120)

"""Pod networks through CNI plugins (the CNI spec's ADD/DEL/CHECK over stdin/env).

The first network config of ``conf_dir`` (``*.conflist``, ``*.conf``,
``*.json``, sorted by name, as libcni loads them) is the pod network; the
loopback plugin brings ``lo`` up first. Each ADD's result is kept with the
sandbox so that DEL gets the ``prevResult`` the spec asks for, after a
restart too.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pycontainerd import errdefs

CNI_VERSION = "1.0.0"
IFNAME = "eth0"
LOOPBACK = {"cniVersion": CNI_VERSION, "name": "cni-loopback", "type": "loopback"}
PLUGIN_TIMEOUT = 60.0


@dataclass(frozen=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str  # tcp, udp, sctp
    host_ip: str = ""


@dataclass(frozen=True)
class Network:
    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]


def load_network(conf_dir: str) -> Network | None:
    """The pod network of ``conf_dir``; None when there is none (NetworkReady false)."""
    try:
        names = sorted(os.listdir(conf_dir))
    except FileNotFoundError:
        return None
    for name in names:
        if not name.endswith((".conflist", ".conf", ".json")):
            continue
        try:
            with open(os.path.join(conf_dir, name), "rb") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict):
            continue
        if name.endswith(".conflist") or "plugins" in doc:
            plugins = doc.get("plugins") or []
        else:
            plugins = [doc]
        if not plugins or not all(isinstance(p, dict) and p.get("type") for p in plugins):
            continue
        return Network(
            name=str(doc.get("name", name)),
            cni_version=str(doc.get("cniVersion", CNI_VERSION)),
            plugins=tuple(plugins),
        )
    return None


class CNI:
    def __init__(self, bin_dirs: Sequence[str], conf_dir: str) -> None:
        self.bin_dirs = list(bin_dirs)
        self.conf_dir = conf_dir

    def network(self) -> Network | None:
        return load_network(self.conf_dir)

    def _binary(self, plugin_type: str) -> str:
        for directory in self.bin_dirs:
            path = os.path.join(directory, plugin_type)
            if os.access(path, os.X_OK):
                return path
        raise errdefs.FailedPrecondition(
            f"CNI plugin {plugin_type!r} not found in {':'.join(self.bin_dirs)}"
        )

    async def _exec(
        self, command: str, conf: Mapping[str, Any], netns: str, container_id: str, args: str
    ) -> dict[str, Any]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": IFNAME,
            "CNI_PATH": ":".join(self.bin_dirs),
            "CNI_ARGS": args,
        }
        proc = await asyncio.create_subprocess_exec(
            self._binary(str(conf["type"])),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(json.dumps(conf).encode()), PLUGIN_TIMEOUT
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise errdefs.DeadlineExceeded(
                f"CNI plugin {conf['type']} {command} timed out"
            ) from None
        if proc.returncode != 0:
            try:
                detail = json.loads(out).get("msg", "")
            except ValueError:
                detail = ""
            raise errdefs.Internal(
                f"CNI plugin {conf['type']} {command} failed: "
                f"{detail or err.decode().strip() or out.decode().strip()}"
            )
        if command != "ADD" or not out.strip():
            return {}
        result: dict[str, Any] = json.loads(out)
        return result

    @staticmethod
    def _conf(
        network: Network,
        plugin: Mapping[str, Any],
        previous: Mapping[str, Any] | None,
        ports: Sequence[PortMapping],
    ) -> dict[str, Any]:
        conf = dict(plugin)
        conf["name"] = network.name
        conf["cniVersion"] = network.cni_version
        if previous:
            conf["prevResult"] = previous
        capabilities = plugin.get("capabilities") or {}
        if capabilities.get("portMappings") and ports:
            conf["runtimeConfig"] = {
                "portMappings": [
                    {
                        "hostPort": p.host_port,
                        "containerPort": p.container_port,
                        "protocol": p.protocol,
                        **({"hostIP": p.host_ip} if p.host_ip else {}),
                    }
                    for p in ports
                ]
            }
        return conf

    async def add(
        self,
        network: Network,
        sandbox_id: str,
        netns: str,
        args: str,
        ports: Sequence[PortMapping],
    ) -> dict[str, Any]:
        """Set up loopback and the pod network; returns the network's result."""
        await self._exec("ADD", LOOPBACK, netns, sandbox_id, args)
        result: dict[str, Any] = {}
        done: list[dict[str, Any]] = []
        try:
            for plugin in network.plugins:
                conf = self._conf(network, plugin, result or None, ports)
                result = await self._exec("ADD", conf, netns, sandbox_id, args) or result
                done.append(conf)
        except BaseException:
            await self._delete(network, done, netns, sandbox_id, args, result, ports)
            raise
        return {"network": network.name, "result": result, "ports": [p.__dict__ for p in ports]}

    async def _delete(
        self,
        network: Network,
        plugins: Sequence[Mapping[str, Any]],
        netns: str,
        sandbox_id: str,
        args: str,
        result: Mapping[str, Any],
        ports: Sequence[PortMapping],
    ) -> None:
        errors: list[str] = []
        for plugin in reversed(plugins):
            conf = self._conf(network, plugin, result or None, ports)
            try:
                await self._exec("DEL", conf, netns, sandbox_id, args)
            except errdefs.ContainerdError as exc:
                errors.append(str(exc))
        if errors:
            raise errdefs.Internal("; ".join(errors))

    async def remove(
        self, saved: Mapping[str, Any], sandbox_id: str, netns: str, args: str
    ) -> None:
        """Tear down what ``add`` set up (from its saved result)."""
        network = self.network()
        if network is None or not saved:
            return
        ports = [PortMapping(**p) for p in saved.get("ports", [])]
        await self._delete(
            network, network.plugins, netns, sandbox_id, args, saved.get("result") or {}, ports
        )


def pod_ips(saved: Mapping[str, Any]) -> list[str]:
    """The pod's addresses from a saved ADD result, IPv4 first."""
    result = saved.get("result") or {}
    found = [str(ip.get("address", "")).split("/")[0] for ip in result.get("ips") or []]
    found = [ip for ip in found if ip]
    return sorted(found, key=lambda ip: ":" in ip)


def cni_args(namespace: str, name: str, sandbox_id: str, uid: str) -> str:
    return ";".join(
        (
            "IgnoreUnknown=1",
            f"K8S_POD_NAMESPACE={namespace}",
            f"K8S_POD_NAME={name}",
            f"K8S_POD_INFRA_CONTAINER_ID={sandbox_id}",
            f"K8S_POD_UID={uid}",
        )
    )

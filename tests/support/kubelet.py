"""kubelet (scripts/go-tools.txt) in standalone mode against a daemon in a test's namespace.

No API server: static pods from a manifest directory. kubelet runs in the
daemon's network namespace (its read-only and healthz ports on that loopback)
and in a mount namespace of its own whose /proc/sys entries kubelet would set
(overcommit, panic on oops, keys limits) are bind-mounted over with files that
already read as kubelet wants them: with ``protectKernelDefaults`` it checks
and never writes, so the host's settings stay as they are. Its state lives in
a temporary directory; mounts it makes stay in its namespace (emptyDir volumes
are plain directories the daemon sees).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.critest import GO_BIN
from tests.support.netns import NetNamespace

#: The node's name; static pods are named ``<manifest name>-<node>``.
NODE = "pcd-node"
READ_ONLY_PORT = 10255
HEALTHZ_PORT = 10248
# What kubelet's setupKernelTunables wants each to read.
KERNEL_TUNABLES = {
    "vm/overcommit_memory": 1,
    "vm/panic_on_oom": 0,
    "kernel/panic": 10,
    "kernel/panic_on_oops": 1,
    "kernel/keys/root_maxkeys": 1000000,
    "kernel/keys/root_maxbytes": 25000000,
}


def web_pod(name: str, image: str) -> dict[str, Any]:
    """A static pod of two containers on one network sharing an emptyDir.

    ``server`` serves a page (with an HTTP readiness probe), ``sidecar`` fetches
    it into the shared volume every second (with an exec liveness probe).
    """
    shared = [{"name": "shared", "mountPath": "/data"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "server",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": [
                        "sh",
                        "-c",
                        "echo hello > /data/index.html; exec httpd -f -p 8080 -h /data",
                    ],
                    "volumeMounts": shared,
                    "readinessProbe": {
                        "httpGet": {"path": "/index.html", "port": 8080},
                        "periodSeconds": 1,
                    },
                },
                {
                    "name": "sidecar",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": [
                        "sh",
                        "-c",
                        "touch /tmp/alive; while :; do "
                        "wget -q -O /data/seen http://127.0.0.1:8080/index.html; sleep 1; done",
                    ],
                    "volumeMounts": shared,
                    "livenessProbe": {
                        "exec": {"command": ["cat", "/tmp/alive"]},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                    },
                },
            ],
            "volumes": [{"name": "shared", "emptyDir": {}}],
        },
    }


class Kubelet:
    def __init__(self, address: Path, netns: NetNamespace, base: Path) -> None:
        self.address = address
        self.netns = netns
        self.base = Path(tempfile.mkdtemp(prefix="pkub-", dir=base))
        self.manifests = self.base / "manifests"
        self.manifests.mkdir()
        self.log_path = self.base / "kubelet.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> dict[str, Any]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "staticPodPath": str(self.manifests),
            "fileCheckFrequency": "1s",
            "syncFrequency": "5s",
            "containerRuntimeEndpoint": f"unix://{self.address}",
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            "failCgroupV1": False,
            "protectKernelDefaults": True,
            "oomScoreAdj": 0,
            "address": "127.0.0.1",
            "readOnlyPort": READ_ONLY_PORT,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": HEALTHZ_PORT,
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "podLogsDir": str(self.base / "pod-logs"),
            "serializeImagePulls": False,
            "evictionHard": {},
            "imageGCHighThresholdPercent": 100,
            "localStorageCapacityIsolation": False,
        }

    def start(self) -> Kubelet:
        tunables = self.base / "sysctl"
        tunables.mkdir()
        binds = []
        for name, value in KERNEL_TUNABLES.items():
            fake = tunables / name.replace("/", "_")
            fake.write_text(f"{value}\n")
            binds.append(f"mount --bind {fake} /proc/sys/{name}")
        config = self.base / "config.json"
        config.write_text(json.dumps(self.config()))
        kubelet = [
            str(GO_BIN / "kubelet"),
            f"--config={config}",
            f"--root-dir={self.base / 'root'}",
            f"--cert-dir={self.base / 'pki'}",
            f"--hostname-override={NODE}",
            "--node-ip=127.0.0.1",
            "--v=2",
        ]
        script = " && ".join([*binds, 'exec "$@"'])
        argv = self.netns.argv(
            ["unshare", "-m", "--propagation", "slave", "sh", "-c", script, "kubelet", *kubelet]
        )
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kubelet exited:\n{self.log()[-5000:]}")
            try:
                if self.get(f"http://127.0.0.1:{HEALTHZ_PORT}/healthz") == b"ok":
                    return self
            except (OSError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"kubelet not healthy in 60s:\n{self.log()[-5000:]}")
            time.sleep(0.5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, url: str) -> bytes:
        """GET from inside the namespace (kubelet's ports are on its loopback)."""
        out = self.netns.run(
            "python3",
            "-c",
            "import sys, urllib.error, urllib.request\n"
            "try:\n"
            "    sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=10).read())\n"
            "except urllib.error.HTTPError as e:\n"
            "    sys.exit(f'{e.code}: {e.read().decode(errors=\"replace\")}')",
            url,
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr.decode(errors="replace"))
        return out.stdout

    def pods(self) -> list[dict[str, Any]]:
        raw = self.get(f"http://127.0.0.1:{READ_ONLY_PORT}/pods")
        return json.loads(raw).get("items") or []

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> Kubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["NODE", "Kubelet", "web_pod"]

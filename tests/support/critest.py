"""critest (cri-tools' CRI validation suite) against a daemon in a network namespace.

critest's images live on public registries this machine cannot reach, so the
local test registry serves look-alikes (busybox-static based: a full busybox,
an httpd "web server", images with users and tags) under the same paths, and
the daemon's registry mirrors send ``registry.k8s.io``, ``gcr.io`` and
``k8s.gcr.io`` there. Every spec runs, the streaming ones (exec, attach,
port-forward) included.

``python -m tests.support.critest`` runs the suite against pycontainerd and
against containerd 2.x (scripts/go-tools.txt) and prints both counts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support import layers as L
from tests.support.cri import CNI_BIN_DIR, cni_conflist
from tests.support.daemon import DaemonProcess, end_helpers_of, unmount_below
from tests.support.images import GROUP, PASSWD, build_image, busybox_binary, push_image
from tests.support.netns import NetNamespace
from tests.support.procs import stop_process
from tests.support.registry import TestRegistry

GO_BIN = Path(os.environ.get("PYCONTAINERD_GO_TOOLS", "/var/cache/pycontainerd-test/go")) / "bin"
MIRRORED = ("registry.k8s.io", "gcr.io", "k8s.gcr.io")
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10"
GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
CRITEST_TIMEOUT = 1800.0
SUMMARY = re.compile(
    r"(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped", re.MULTILINE
)


#: The web server look-alike: busybox httpd under a script named nginx, so that
#: ``pidof nginx``, /var/run/nginx.pid and "master process" in its command line
#: are there as critest's namespace specs expect of nginx.
NGINX_SCRIPT = """#!/bin/sh
echo $$ > /var/run/nginx.pid
httpd -f -p 80 -h /var/www
"""


#: Debian's busybox-static has no pgrep applet; critest's images do.
PGREP_SCRIPT = """#!/bin/sh
for stat in /proc/[0-9]*/stat; do
  read -r pid comm rest < "$stat" 2>/dev/null || continue
  [ "$comm" = "($1)" ] && echo "$pid" && found=1
done
[ -n "$found" ]
"""


def _busybox_root(passwd: str = PASSWD, group: str = GROUP) -> list[L.TarEntry]:
    applets = subprocess.run(
        [str(busybox_binary()), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    return [
        L.directory("bin"),
        L.file("bin/busybox", busybox_binary().read_bytes(), mode=0o755),
        # Hard links, as busybox images have them: masking one applet must not mask all.
        # The header carries the target's mode, as docker's do: containerd applies it.
        *(
            L.TarEntry(f"bin/{a}", "hardlink", mode=0o755, target="bin/busybox")
            for a in applets
            if a != "busybox"
        ),
        L.directory("dev"),
        L.directory("etc"),
        L.file("etc/passwd", passwd),
        L.file("etc/group", group),
        L.directory("proc"),
        L.directory("root", mode=0o700),
        L.directory("sys"),
        L.directory("tmp", mode=0o1777),
        L.directory("var"),
        L.directory("var/run"),
        L.directory("usr"),
        L.directory("usr/sbin"),
        L.file("usr/sbin/nginx", NGINX_SCRIPT, mode=0o755),
        L.directory("usr/bin"),
        L.file("usr/bin/pgrep", PGREP_SCRIPT, mode=0o755),
        L.file("usr/bin/ipcs", "#!/bin/sh\ncat /proc/sysvipc/shm\n", mode=0o755),
        L.directory("var/www"),
        L.file("var/www/index.html", "<html>Welcome to nginx!</html>\n"),
    ]


def push_critest_images(registry: TestRegistry) -> None:
    """critest's images (by path, registry host left to the mirrors) in the local registry."""
    passwd = (
        PASSWD + "www-data:x:33:33:www-data:/var/www:/bin/false\nuser1003:x:1003:1003::/:/bin/sh\n"
    )
    # critest's predefined-group image: uid 1000 ("app") is in group 50000.
    group = GROUP + "www-data:x:33:\ngroup-defined-in-image:x:50000:app\n"

    def push(path: str, tag: str, same_as: str = "", **config) -> None:
        # A label naming each image keeps look-alikes apart (one image per id for critest).
        labels = {"pycontainerd.test/image": same_as or f"{path}:{tag}"}
        image = build_image([_busybox_root(passwd, group)], labels=labels, **config)
        push_image(registry, image, path, tag)

    push("e2e-test-images/busybox", "1.29-2")
    push("e2e-test-images/busybox", "1.36.1-1")
    httpd = ("sh", "-c", "echo httpd listening on 80 >&2; httpd -f -p 80 -h /var/www")
    push("e2e-test-images/httpd", "2.4.39-4", cmd=httpd)
    push("e2e-test-images/nginx", "1.14-2", cmd=("/usr/sbin/nginx", "nginx: master process"))
    # Pods share their PID namespace by default: the pause look-alike must not be a
    # "sleep", which critest's exec timeout spec looks for (busybox tail sleeps inside).
    push("pause", "3.10", cmd=("/bin/tail", "-f", "/dev/null"))
    push("pause", "3.9", cmd=("/bin/tail", "-f", "/dev/null"))
    staging = "k8s-staging-cri-tools/"
    push(staging + "test-image-latest", "latest")
    push(staging + "test-image-tag", "test")
    push(staging + "test-image-tag", "all")
    for n in (1, 2, 3):
        push(staging + f"test-image-{n}", "latest", cmd=("echo", f"image {n}"))
        push(staging + "test-image-tags", str(n), same_as="test-image-tags")
    push(staging + "test-image-user-uid", "latest", user="1002")
    push(staging + "test-image-user-username", "latest", user="www-data")
    push(staging + "test-image-user-uid-group", "latest", user="1003:1003")
    push(staging + "test-image-user-username-group", "latest", user="www-data:www-data")
    push(staging + "test-image-predefined-group", "latest")
    # The host-network port-forward spec's web server listens on 12003.
    hostnet = ("httpd", "-f", "-p", "12003", "-h", "/var/www")
    push(staging + "hostnet-nginx-" + GOARCH, "latest", cmd=hostnet)


@dataclass
class CritestResult:
    passed: int
    failed: int
    skipped: int
    output: str

    @property
    def failures(self) -> list[str]:
        return re.findall(r"^\s*\[FAIL\] (.*)$", self.output, re.MULTILINE)


def parse_summary(output: str) -> CritestResult:
    match = SUMMARY.search(output)
    if match is None:
        raise AssertionError(f"no critest summary in its output:\n{output[-3000:]}")
    passed, failed, _, skipped = (int(g) for g in match.groups())
    return CritestResult(passed, failed, skipped, output)


class CritestRun:
    """A namespace, CNI config and registry mirror set-up shared by both daemons."""

    def __init__(self, registry: TestRegistry) -> None:
        self.registry = registry
        self.base = Path(tempfile.mkdtemp(prefix="pcrt-"))
        self.base.chmod(0o711)
        self.netns = NetNamespace("pcrt")
        self.cni_dir = self.base / "cni"
        self.hosts_dir = self.base / "hosts"
        # critest makes SysV shared memory "on the host" for its HostIpc specs: the
        # daemon and critest share an IPC namespace of the run's own instead.
        self.ipcns = self.base / "ipc"

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` inside the run's network and IPC namespaces."""
        return ["nsenter", f"--net={self.netns.path}", f"--ipc={self.ipcns}", "--", *argv]

    def __enter__(self) -> CritestRun:
        self.ipcns.touch()
        subprocess.run(["unshare", f"--ipc={self.ipcns}", "true"], check=True)
        self.netns.__enter__()
        self.netns.relay(self.registry.port)
        self.cni_dir.mkdir()
        conflist = cni_conflist(self.base, "pcrt" + uuid.uuid4().hex[:6])
        (self.cni_dir / "10-critest.conflist").write_text(json.dumps(conflist))
        endpoint = f"http://{self.registry.host}"
        for host in MIRRORED:
            (self.hosts_dir / host).mkdir(parents=True)
            (self.hosts_dir / host / "hosts.toml").write_text(
                f'server = "{endpoint}"\n[host."{endpoint}"]\n  capabilities = ["pull", "resolve"]\n'
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.netns.close()
        unmount_below(self.base)
        shutil.rmtree(self.base, ignore_errors=True)

    def pycontainerd_config(self) -> str:
        endpoint = f"http://{self.registry.host}"
        mirrors = "".join(
            f'  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{host}"]\n'
            f'    endpoint = ["{endpoint}"]\n'
            for host in MIRRORED
        )
        return (
            '[plugins."io.containerd.grpc.v1.cri"]\n'
            f'  sandbox_image = "{SANDBOX_IMAGE}"\n'
            f'  [plugins."io.containerd.grpc.v1.cri".cni]\n'
            f'    bin_dir = "{CNI_BIN_DIR}"\n'
            f'    conf_dir = "{self.cni_dir}"\n' + mirrors
        )

    def critest(self, address: Path, extra: Sequence[str] = ()) -> CritestResult:
        argv = [
            str(GO_BIN / "critest"),
            f"--runtime-endpoint=unix://{address}",
            f"--image-endpoint=unix://{address}",
            "--ginkgo.no-color",
            "--ginkgo.flake-attempts=1",
            *extra,
        ]
        result = subprocess.run(
            self.argv(argv),
            capture_output=True,
            text=True,
            timeout=CRITEST_TIMEOUT,
            cwd=self.base,
        )
        return parse_summary(result.stdout + result.stderr)

    @contextmanager
    def pycontainerd(self) -> Iterator[DaemonProcess]:
        """pycontainerd serving CRI in the run's namespaces."""
        (self.base / "pcd").mkdir()
        daemon = DaemonProcess(
            base=self.base / "pcd",
            extra_config=self.pycontainerd_config(),
            command_prefix=self.argv([]),
            log_level="info",
        )
        try:
            yield daemon.start()
        finally:
            daemon.cleanup()

    @contextmanager
    def containerd2(self) -> Iterator[tuple[Path, int]]:
        """containerd 2.x's CRI in the run's namespaces: (socket, daemon pid)."""
        base = self.base / "ctd2"
        base.mkdir()
        shims = base / "bin"
        shims.mkdir()
        (shims / "containerd-shim-runc-v2").symlink_to(GO_BIN / "containerd2-shim-runc-v2")
        address = base / "c.sock"
        config = base / "config.toml"
        config.write_text(
            f'version = 3\nroot = "{base}/root"\nstate = "{base}/state"\n'
            f'[grpc]\n  address = "{address}"\n'
            '[plugins."io.containerd.cri.v1.images".pinned_images]\n'
            f'  sandbox = "{SANDBOX_IMAGE}"\n'
            '[plugins."io.containerd.cri.v1.images".registry]\n'
            f'  config_path = "{self.hosts_dir}"\n'
            '[plugins."io.containerd.cri.v1.runtime"]\n'
            "  restrict_oom_score_adj = true\n  netns_mounts_under_state_dir = true\n"
            '[plugins."io.containerd.cri.v1.runtime".cni]\n'
            f'  bin_dirs = ["{CNI_BIN_DIR}"]\n  conf_dir = "{self.cni_dir}"\n'
        )
        env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"}
        with open(base / "containerd.log", "wb") as log:
            proc = subprocess.Popen(
                self.argv([str(GO_BIN / "containerd2"), "-c", str(config)]),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            for _ in range(200):
                if address.exists():
                    break
                if proc.poll() is not None:
                    raise RuntimeError((base / "containerd.log").read_text()[-3000:])
                time.sleep(0.1)
            yield address, proc.pid
        finally:
            stop_process(proc, 30)
            end_helpers_of(base)

    def against_pycontainerd(self) -> CritestResult:
        with self.pycontainerd() as daemon:
            return self.critest(daemon.address)

    def against_containerd2(self) -> CritestResult:
        with self.containerd2() as (address, _):
            return self.critest(address)


def main() -> int:
    with TestRegistry() as registry:
        push_critest_images(registry)
        results = {}
        for name in sys.argv[1:] or ["pycontainerd", "containerd2"]:
            with CritestRun(registry) as run:
                result = (
                    run.against_pycontainerd()
                    if name == "pycontainerd"
                    else run.against_containerd2()
                )
            results[name] = result
            log_dir = os.environ.get("PYCONTAINERD_CRITEST_LOG_DIR")
            if log_dir:
                (Path(log_dir) / f"critest-{name}.log").write_text(result.output)
            print(
                f"{name}: {result.passed} passed, {result.failed} failed, {result.skipped} skipped"
            )
            for failure in result.failures:
                print(f"  FAIL {failure}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

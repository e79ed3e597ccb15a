"""BuildKit's containerd worker on pycontainerd: buildkitd, buildctl and nerdctl build.

buildkitd (v0.34) runs with only its containerd worker, pointed at our
socket: it pulls the base image from the test registry into our content
store, runs each RUN step as a task through our shim (network mode host, which
here is the test's network namespace: the daemon and buildkitd both run in
one), and stores the result as an image in our image store, which ctr then
runs.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemon import Ctr, unmount_below
from tests.support.images import PushedImage
from tests.support.nerdctl import NerdctlStack, nerdctl_stack
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

NAMESPACE = "default"  # nerdctl's: it shares images with a worker of its own namespace

DOCKERFILE = """\
FROM {base} AS builder
COPY message.txt /src/message.txt
RUN mkdir -p /out && cat /src/message.txt > /out/greeting && echo built-by-run >> /out/greeting
FROM {base}
COPY --from=builder /out/greeting /greeting
RUN echo second-stage >> /greeting
CMD ["cat", "/greeting"]
"""


@dataclass
class BuildKit:
    stack: NerdctlStack
    address: str
    root: Path

    def buildctl(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
        binary = shutil.which("buildctl")
        assert binary, "buildctl is not built: run scripts/go-tools.sh buildctl"
        return self.stack.netns.run(binary, "--addr", self.address, *args, timeout=timeout)


@contextlib.contextmanager
def running_buildkitd(stack: NerdctlStack, registry_host: str) -> Iterator[BuildKit]:
    binary = shutil.which("buildkitd")
    assert binary, "buildkitd is not built: run scripts/go-tools.sh buildkitd"
    root = stack.daemon.base / "bk"
    root.mkdir()
    config = root / "buildkitd.toml"
    config.write_text(f'[registry."{registry_host}"]\n  http = true\n  insecure = true\n')
    address = f"unix://{root}/buildkitd.sock"
    log = open(root / "buildkitd.log", "wb")  # noqa: SIM115 - kept open for the child
    process = subprocess.Popen(
        stack.netns.argv([
            binary, "--root", str(root / "state"), "--addr", address, "--config", str(config),
            "--oci-worker=false", "--containerd-worker=true",
            "--containerd-worker-addr", str(stack.daemon.address),
            "--containerd-worker-namespace", NAMESPACE,
            "--containerd-worker-net", "host",
        ]),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    kit = BuildKit(stack, address, root)
    try:

        def answers() -> bool:
            assert process.poll() is None, (root / "buildkitd.log").read_text()
            return kit.buildctl("debug", "workers", timeout=30).returncode == 0

        wait_for(answers, "buildkitd to answer", timeout=60)
        yield kit
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        unmount_below(root)


@pytest.fixture(scope="module")
def kit(registry, busybox_pushed) -> Iterator[BuildKit]:  # type: ignore[no-untyped-def]
    with (
        nerdctl_stack(relay_ports=(registry.port,)) as stack,
        running_buildkitd(stack, registry.host) as running,
    ):
        yield running


def _context(tmp_path: Path, base: str) -> Path:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    (tmp_path / "message.txt").write_text("from-the-context\n")
    return tmp_path


def test_worker_is_our_containerd(kit: BuildKit) -> None:
    workers = kit.buildctl("debug", "workers", "-v")
    assert workers.returncode == 0, workers.stderr.decode()
    labels = dict(
        (key.strip(), value.strip())
        for key, _, value in (
            line.partition(":\t") for line in workers.stdout.decode().splitlines()
        )
        if key.strip().startswith("org.mobyproject.buildkit.worker.")
    )
    prefix = "org.mobyproject.buildkit.worker."
    assert labels[prefix + "executor"] == "containerd"
    assert labels[prefix + "containerd.namespace"] == NAMESPACE
    assert labels[prefix + "snapshotter"] == "overlayfs"
    # the server UUID from our Introspection.Server (nerdctl build compares it)
    assert re.fullmatch(r"[0-9a-f-]{36}", labels[prefix + "containerd.uuid"])


def test_buildctl_two_stage_build_stored_in_our_image_store_and_run_with_ctr(
    kit: BuildKit,
    busybox_pushed: PushedImage,
    tmp_path: Path,
) -> None:
    context = _context(tmp_path, busybox_pushed.ref)
    name = f"docker.io/library/built-{uuid.uuid4().hex[:6]}:latest"
    built = kit.buildctl(
        "build", "--frontend", "dockerfile.v0",
        "--local", f"context={context}", "--local", f"dockerfile={context}",
        "--output", f"type=image,name={name},unpack=true",
    )  # fmt: skip
    assert built.returncode == 0, built.stderr.decode()[-3000:]

    ctr = Ctr(kit.stack.daemon.address, NAMESPACE)
    assert name in ctr.ok("images", "ls", "-q").split()
    container = f"c-{uuid.uuid4().hex[:6]}"
    out = ctr.ok("run", "--rm", name, container)
    assert out.splitlines() == ["from-the-context", "built-by-run", "second-stage"]


def test_nerdctl_build_through_the_same_buildkitd(
    kit: BuildKit,
    busybox_pushed: PushedImage,
    tmp_path: Path,
) -> None:
    context = _context(tmp_path, busybox_pushed.ref)
    n = kit.stack.nerdctl
    tag = f"nerdbuilt-{uuid.uuid4().hex[:6]}:v1"
    built = n.run("build", "--buildkit-host", kit.address, "-t", tag, str(context), timeout=300)
    assert built.returncode == 0, built.stderr.decode()[-3000:]
    # The worker shares our image store (same server UUID, namespace and
    # snapshotter), so nerdctl has BuildKit write the image there directly
    # instead of exporting a tar and loading it.
    assert b"Loaded image" not in built.stdout + built.stderr
    out = n.ok("run", "--rm", tag)
    assert out.splitlines() == ["from-the-context", "built-by-run", "second-stage"]

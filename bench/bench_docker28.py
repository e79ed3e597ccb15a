"""Docker 28 with the containerd image store: pycontainerd beside containerd 2.x.

The same dockerd 28 (Debian forky's, scripts/fetch-docker28.sh) runs once on
pycontainerd and once on containerd 2.x (``containerd2`` built from the module
proxy), each with a private root and no host networking. Measured: a cold
``docker pull`` of a multi-layer image from a loopback registry (the image
removed and collected before each pull), ``docker run --rm`` of a command, and
``docker build --no-cache`` of a Dockerfile with a RUN and a COPY. Seconds,
median of the rounds, the two daemons taking turns (a ratio above 1: slower).

Run alone with ``python -m bench docker28``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import Row, containerd_daemon, median_of, print_table, pycontainerd_daemon, timed
from tests.support.daemon import Ctr
from tests.support.dockerd import NAMESPACE, DockerClient, DockerDaemon, DockerPrograms
from tests.support.images import large_image, push_image
from tests.support.registry import TestRegistry

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fetch-docker28.sh"
MB = 1_000_000
ROUNDS = 3
OURS = "pycontainerd"
REFERENCE = "containerd 2"
COLLECT_TIMEOUT = 20
IMAGE_STORE = {"features": {"containerd-snapshotter": True}}


def _programs() -> DockerPrograms | None:
    fetched = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, check=False)
    if fetched.returncode != 0:
        print(f"\n== Docker 28: not measured ({SCRIPT.name}: {fetched.stderr.strip()})")
        return None
    dockerd, docker, buildx = fetched.stdout.split()
    return DockerPrograms(dockerd, docker, (Path(buildx),))


@contextmanager
def _dockerd(address: Path, registry: str, programs: DockerPrograms) -> Iterator[DockerClient]:
    dockerd = DockerDaemon(
        address,
        insecure_registries=[registry],
        programs=programs,
        config=IMAGE_STORE,
        storage_driver="overlayfs",
    )
    try:
        dockerd.start()
        yield dockerd.client
    finally:
        dockerd.cleanup()


@dataclass(frozen=True)
class Contender:
    docker: DockerClient
    ctr: Ctr  # on the containerd (ours or containerd 2) under dockerd


def _cold_pull(contender: Contender, ref: str, layers: tuple[str, ...]) -> float:
    contender.docker.ok("rmi", ref)
    contender.docker.ok("builder", "prune", "-af")  # the build cache holds the base's layers

    def collected() -> bool:
        held = set(contender.ctr.ok("content", "ls", "-q").split())
        return not held.intersection(layers)

    deadline = time.monotonic() + COLLECT_TIMEOUT
    while not collected():  # the daemon's collector takes the blobs and snapshots
        if time.monotonic() > deadline:
            held = contender.ctr.ok("content", "ls").strip()
            leases = contender.ctr.ok("leases", "ls").strip()
            raise RuntimeError(f"the removed image's layers were not collected:\n{held}\n{leases}")
        time.sleep(0.1)
    subprocess.run(["sync"], check=False)
    return timed(lambda: contender.docker.ok("pull", ref))


def _run(contender: Contender, ref: str) -> float:
    command = ("run", "--rm", "--network=none", "--pull=never", ref, "echo", "hi")
    return timed(lambda: contender.docker.ok(*command))


def _build(contender: Contender, context: Path) -> float:
    command = ("build", "--no-cache", "--network=none", "-t", "bench:build", str(context))
    seconds = timed(lambda: contender.docker.ok(*command))
    contender.docker.ok("rmi", "bench:build")
    return seconds


def _measures(
    ref: str, layers: tuple[str, ...], context: Path
) -> dict[str, Callable[[Contender], float]]:
    return {
        "docker pull (cold, 4 layers, 60 MB random)": lambda c: _cold_pull(c, ref, layers),
        "docker run --rm echo": lambda c: _run(c, ref),
        "docker build --no-cache (RUN + COPY)": lambda c: _build(c, context),
    }


def run() -> None:
    programs = _programs()
    if programs is None:
        return
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="bench-d28-"))
        stack.callback(shutil.rmtree, workdir, True)
        registry = stack.enter_context(TestRegistry())
        image = large_image(workdir, total_size=60 * MB, file_count=60, layer_count=3)
        pushed = push_image(registry, image, "bench/docker28", "v1")
        ref = pushed.ref
        context = workdir / "context"
        context.mkdir()
        (context / "data.bin").write_bytes(bytes(range(256)) * 4096)
        (context / "Dockerfile").write_text(
            f"FROM {ref}\nRUN echo step > /step.txt\nCOPY data.bin /data.bin\n"
        )
        daemon = stack.enter_context(pycontainerd_daemon())
        containerd2 = stack.enter_context(containerd_daemon(2))
        addresses = {OURS: daemon.address}
        if containerd2 is not None:
            addresses[REFERENCE] = containerd2
        clients = {
            who: Contender(
                stack.enter_context(_dockerd(address, registry.host, programs)),
                Ctr(address, namespace=NAMESPACE),
            )
            for who, address in addresses.items()
        }
        for contender in clients.values():
            contender.docker.ok("pull", ref)
        measures = _measures(ref, pushed.layer_digests, context)
        samples: dict[tuple[str, str], list[float]] = {
            (what, who): [] for what in measures for who in clients
        }
        for _ in range(ROUNDS):
            for what, measure in measures.items():
                for who, contender in clients.items():
                    samples[(what, who)].append(measure(contender))
        rows = []
        for what in measures:
            reference = samples.get((what, REFERENCE))
            rows.append(
                Row(
                    what,
                    median_of(samples[(what, OURS)]),
                    median_of(reference) if reference else None,
                    "s",
                    f"dockerd 28 on {REFERENCE}",
                )
            )
        print_table("Docker 28 (containerd image store) on pycontainerd", rows)

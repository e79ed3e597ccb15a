"""Docker 28 on pycontainerd, with the containerd image store.

Debian forky's dockerd 28 (fetched by scripts/fetch-docker28.sh, never
installed) runs with ``{"features": {"containerd-snapshotter": true}}`` and
``--containerd=<our socket>``: images live in pycontainerd's image, content and
snapshot services (namespace "moby", snapshotter overlayfs) instead of dockerd's
own graph driver, and BuildKit inside dockerd builds on them. The real docker
28 CLI (and its buildx plugin for ``docker build``) drives it. dockerd leaves
the host's network alone (no bridge, iptables or forwarding): containers and
build steps run with ``--network=none``. Every test also checks that dockerd
logged no unexpected errors.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Ctr
from tests.support.dockerd import NAMESPACE, DockerClient, Stack, docker28, running_stack
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

#: The containerd snapshotter dockerd uses (its --storage-driver with the image store).
SNAPSHOTTER = "overlayfs"
IMAGE_STORE = {"features": {"containerd-snapshotter": True}}
#: No container may reach for a network the test did not make (no bridge: see above).
NO_NETWORK = ("--network=none", "--pull=never")


@pytest.fixture(scope="module")
def stack(registry, busybox_pushed) -> Iterator[Stack]:
    with running_stack(
        busybox_pushed.ref,
        registry.host,
        programs=docker28(),
        config=IMAGE_STORE,
        storage_driver=SNAPSHOTTER,
    ) as running:
        yield running


@pytest.fixture
def docker(stack: Stack) -> Iterator[DockerClient]:
    """The client of the shared stack, with the test image pulled; no new errors in dockerd's log."""
    stack.docker.ok("pull", stack.image)
    offset = stack.dockerd.log_size()
    yield stack.docker
    errors = stack.unexpected_errors(since=offset)
    assert not errors, "dockerd logged errors:\n" + "\n".join(errors)


@pytest.fixture
def ctr(stack: Stack) -> Ctr:
    return Ctr(stack.daemon.address, namespace=NAMESPACE)


@pytest.fixture
def unique() -> Iterator[Callable[[str], str]]:
    """Makes unique names (containers, tags)."""

    def new(kind: str) -> str:
        return f"{kind}-{uuid.uuid4().hex[:10]}"

    yield new


def image_names(ctr: Ctr) -> list[str]:
    return ctr.ok("images", "ls", "-q").split()


def run(docker: DockerClient, *args: str) -> str:
    """``docker run`` of a local image with no network."""
    return docker.ok("run", *NO_NETWORK, *args)


# --- the daemon ---------------------------------------------------------------------------


def test_dockerd_28_uses_pycontainerd_as_its_image_store(stack: Stack) -> None:
    version = stack.docker.ok("version", "--format", "{{.Server.Version}} {{.Client.Version}}")
    server, client = version.split()
    assert server.startswith("28.") and client.startswith("28."), version
    info = stack.docker.ok("info", "--format", "{{.Driver}} {{json .DriverStatus}}")
    assert info.startswith(f"{SNAPSHOTTER} "), info
    assert "io.containerd.snapshotter.v1" in info, info
    containerd = stack.docker.ok("info", "--format", "{{.ContainerdCommit.ID}}")
    assert containerd.startswith("pycontainerd"), containerd


# --- images -------------------------------------------------------------------------------


def test_pull_over_plain_http_lands_in_pycontainerds_stores(
    stack: Stack, docker: DockerClient, ctr: Ctr
) -> None:
    result = docker.run("pull", stack.image)  # pulled by the fixture: already there
    assert result.returncode == 0, result.stderr.decode()
    assert b"Image is up to date" in result.stdout
    assert stack.image in image_names(ctr)
    listed = docker.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert stack.image in listed
    # Unpacked into pycontainerd's overlayfs snapshotter, the layer committed.
    snapshots = ctr.ok("snapshots", "--snapshotter", SNAPSHOTTER, "ls")
    assert "Committed" in snapshots, snapshots


def test_pull_of_a_missing_tag_fails_cleanly(
    stack: Stack, docker: DockerClient, ctr: Ctr, registry
) -> None:
    before = image_names(ctr)
    error = docker.fails("pull", registry.ref("library/busybox", "no-such-tag"))
    assert "not found" in error, error
    assert image_names(ctr) == before


def test_tag_and_rmi(stack: Stack, docker: DockerClient, ctr: Ctr, unique) -> None:
    tag = f"{unique('tagged')}:v1"
    docker.ok("tag", stack.image, tag)
    full = f"docker.io/library/{tag}"
    assert full in image_names(ctr)
    image_id = docker.ok("images", "--no-trunc", "--format", "{{.ID}}", tag).strip()
    assert image_id == docker.ok("images", "--no-trunc", "--format", "{{.ID}}", stack.image).strip()
    assert "Untagged" in docker.ok("rmi", tag)
    assert full not in image_names(ctr)
    assert stack.image in image_names(ctr), "rmi of one tag removed the other"
    assert docker.ok("images", "-q", tag) == ""


def test_save_and_load(stack: Stack, docker: DockerClient, ctr: Ctr, unique) -> None:
    tag = f"{unique('saved')}:v1"
    docker.ok("tag", stack.image, tag)
    archive = stack.dockerd.base / f"{unique('save')}.tar"
    docker.ok("save", "-o", str(archive), tag)
    assert archive.stat().st_size > 0
    docker.ok("rmi", tag)
    assert f"docker.io/library/{tag}" not in image_names(ctr)
    assert f"Loaded image: {tag}" in docker.ok("load", "-i", str(archive))
    assert f"docker.io/library/{tag}" in image_names(ctr)
    assert run(docker, "--rm", tag, "echo", "loaded") == "loaded\n"
    docker.ok("rmi", tag)
    archive.unlink()


def test_rmi_of_the_last_tag_deletes_the_image(
    stack: Stack, docker: DockerClient, ctr: Ctr, registry
) -> None:
    docker.ok("rmi", stack.image)
    assert stack.image not in image_names(ctr)
    assert stack.image not in docker.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    # A second pull fetches it again from the registry.
    assert "Downloaded newer image" in docker.ok("pull", stack.image)
    assert stack.image in image_names(ctr)


# --- containers ---------------------------------------------------------------------------


def test_run_rm_prints_and_passes_the_exit_code(
    stack: Stack, docker: DockerClient, ctr: Ctr
) -> None:
    assert run(docker, "--rm", stack.image, "echo", "hi") == "hi\n"
    assert docker.status("run", *NO_NETWORK, "--rm", stack.image, "sh", "-c", "exit 5") == 5
    assert docker.ok("ps", "-aq") == ""
    assert ctr.ok("containers", "ls", "-q") == ""


def test_run_detached_exec_and_logs(stack: Stack, docker: DockerClient, ctr: Ctr, unique) -> None:
    name = unique("c")
    script = "echo to-out; echo to-err >&2; sleep 3600"
    container_id = run(docker, "-d", "--name", name, stack.image, "sh", "-c", script).strip()
    try:
        assert container_id in ctr.ok("tasks", "ls")
        # The container's root is a snapshot of pycontainerd's overlayfs snapshotter.
        assert container_id in ctr.ok("snapshots", "--snapshotter", SNAPSHOTTER, "ls")
        probe = "if test -t 1; then echo tty; else echo no-tty; fi"
        assert docker.ok("exec", name, "sh", "-c", probe) == "no-tty\n"
        assert docker.ok("exec", "-t", name, "sh", "-c", probe) == "tty\r\n"
        assert docker.status("exec", name, "sh", "-c", "exit 3") == 3

        def logged() -> bool:
            return b"to-err" in docker.run("logs", name).stderr

        wait_for(logged, "the container's output", timeout=20)
        logs = docker.run("logs", name)
        assert (logs.stdout, logs.stderr) == (b"to-out\n", b"to-err\n")
    finally:
        docker.run("rm", "-f", name, timeout=60)
    assert container_id not in ctr.ok("containers", "ls", "-q")


# --- build --------------------------------------------------------------------------------


def test_build_a_dockerfile_with_buildkit_inside_dockerd(
    stack: Stack, docker: DockerClient, ctr: Ctr, unique, tmp_path: Path
) -> None:
    (tmp_path / "greeting.txt").write_text("from the context\n")
    (tmp_path / "Dockerfile").write_text(
        f"FROM {stack.image}\n"
        "RUN echo built-by-run > /built.txt && mkdir /work\n"
        "COPY greeting.txt /work/greeting.txt\n"
        'CMD ["sh", "-c", "cat /built.txt /work/greeting.txt"]\n'
    )
    tag = f"{unique('built')}:v1"
    result = docker.run("build", "--network=none", "--progress=plain", "-t", tag, str(tmp_path))
    assert result.returncode == 0, result.stderr.decode()
    assert f"docker.io/library/{tag}" in image_names(ctr)
    assert run(docker, "--rm", tag) == "built-by-run\nfrom the context\n"
    history = docker.ok("history", "--format", "{{.CreatedBy}}", tag)
    assert "echo built-by-run" in history, history
    docker.ok("rmi", tag)
    assert f"docker.io/library/{tag}" not in image_names(ctr)

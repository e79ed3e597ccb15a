"""Docker 28 on pycontainerd, with the containerd image store.

Debian forky's dockerd 28 (fetched by scripts/fetch-docker28.sh, never
installed) runs with ``{"features": {"containerd-snapshotter": true}}`` and
``--containerd=<our socket>``: images live in pycontainerd's image, content and
snapshot services (namespace "moby", snapshotter overlayfs) instead of dockerd's
own graph driver, and BuildKit inside dockerd builds on them. The real docker
28 CLI (and its buildx plugin for ``docker build``) drives it. dockerd leaves
the host's network alone (no bridge, iptables or forwarding): containers and
build steps run with ``--network=none``; the last tests start a second dockerd
inside a network namespace of their own, where it sets up its default bridge,
user networks and firewall rules. Every test also checks that dockerd logged
no unexpected errors.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Ctr
from tests.support.dockerd import (
    CONTAINERD_DOWN_ERRORS,
    EVENTS_RESUMED,
    NAMESPACE,
    DockerClient,
    Stack,
    docker28,
    running_stack,
)
from tests.support.netns import NetNamespace
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


def checked_client(stack: Stack) -> Iterator[DockerClient]:
    """The stack's client, with the test image pulled; fails on new errors in dockerd's log."""
    stack.docker.ok("pull", stack.image)
    offset = stack.dockerd.log_size()
    yield stack.docker
    errors = stack.unexpected_errors(since=offset)
    assert not errors, "dockerd logged errors:\n" + "\n".join(errors)


@pytest.fixture
def docker(stack: Stack) -> Iterator[DockerClient]:
    yield from checked_client(stack)


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
    stack: Stack, docker: DockerClient, ctr: Ctr, busybox_pushed
) -> None:
    result = docker.run("pull", stack.image)  # pulled by the fixture: already there
    assert result.returncode == 0, result.stderr.decode()
    assert b"Image is up to date" in result.stdout
    assert stack.image in image_names(ctr)
    # The image's ID is its manifest's digest; manifest, config and layer are our blobs.
    listed = docker.ok("images", "--no-trunc", "--format", "{{.ID}}", stack.image).strip()
    assert listed == busybox_pushed.manifest_digest
    content = ctr.ok("content", "ls", "-q").split()
    wanted = [busybox_pushed.manifest_digest, busybox_pushed.config_digest]
    for digest in (*wanted, *busybox_pushed.layer_digests):
        assert digest in content, digest
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


def test_save_and_load(
    stack: Stack, docker: DockerClient, ctr: Ctr, unique, busybox_pushed
) -> None:
    tag = f"{unique('saved')}:v1"
    docker.ok("tag", stack.image, tag)
    archive = stack.dockerd.base / f"{unique('save')}.tar"
    docker.ok("save", "-o", str(archive), tag)
    with tarfile.open(archive) as saved:  # an OCI layout, with docker's manifest.json
        names = saved.getnames()
    assert {"index.json", "oci-layout", "manifest.json"} <= set(names), names
    layer = busybox_pushed.layer_digests[0].removeprefix("sha256:")
    assert f"blobs/sha256/{layer}" in names
    docker.ok("rmi", tag)
    assert f"docker.io/library/{tag}" not in image_names(ctr)
    assert f"Loaded image: {tag}" in docker.ok("load", "-i", str(archive))
    assert f"docker.io/library/{tag}" in image_names(ctr)
    assert run(docker, "--rm", tag, "echo", "loaded") == "loaded\n"
    docker.ok("rmi", tag)
    archive.unlink()


def test_rmi_of_the_last_tag_deletes_the_image(
    stack: Stack, docker: DockerClient, ctr: Ctr, busybox_pushed
) -> None:
    docker.ok("rmi", stack.image)
    assert stack.image not in image_names(ctr)
    assert stack.image not in docker.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    # Nothing holds the blobs any more: pycontainerd's garbage collector takes them.
    layer = busybox_pushed.layer_digests[0]
    wait_for(lambda: layer not in ctr.ok("content", "ls", "-q"), "the layer's collection", 20)
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


def test_volumes_binds_and_run_options(
    stack: Stack, docker: DockerClient, unique, tmp_path: Path
) -> None:
    volume = unique("vol")
    docker.ok("volume", "create", volume)
    try:
        run(docker, "--rm", "-v", f"{volume}:/data", stack.image, "sh", "-c", "echo kept > /data/f")
        assert (
            run(docker, "--rm", "-v", f"{volume}:/data", stack.image, "cat", "/data/f") == "kept\n"
        )
        # A new volume on a directory of the image starts as a copy of it (from our snapshot).
        copied = run(
            docker, "--rm", "-v", f"{unique('etc')}:/etc", stack.image, "cat", "/etc/passwd"
        )
        assert copied.startswith("root:"), copied
    finally:
        docker.run("volume", "prune", "-af", timeout=60)  # this one and the /etc copy
    (tmp_path / "x").write_text("from-the-host\n")
    script = "cat /h/x; touch /h/y 2>/dev/null || echo read-only"
    assert run(docker, "--rm", "-v", f"{tmp_path}:/h:ro", stack.image, "sh", "-c", script) == (
        "from-the-host\nread-only\n"
    )
    script = "echo $A; pwd; id -u; touch /z 2>/dev/null || echo read-only"
    options = ("--read-only", "-e", "A=b", "-w", "/tmp", "--user", "1000:1000")
    assert (
        run(docker, "--rm", *options, stack.image, "sh", "-c", script)
        == "b\n/tmp\n1000\nread-only\n"
    )
    limit = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"
    assert run(docker, "--rm", "--memory", "64m", stack.image, "sh", "-c", limit) == "67108864\n"


def test_lifecycle_stop_start_restart_pause_kill(
    stack: Stack, docker: DockerClient, unique
) -> None:
    name = unique("life")
    script = 'trap "echo got-term; exit 7" TERM; while true; do sleep 0.1; done'
    run(docker, "-d", "--name", name, stack.image, "sh", "-c", script)
    try:
        wait_for(lambda: docker.inspect(name, "{{.State.Status}}") == "running", "running", 20)
        first = int(docker.inspect(name, "{{.State.Pid}}"))
        assert str(first) in docker.ok("top", name)
        stats = docker.ok("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", name)
        assert stats.startswith(f"{name} ") and not stats.split()[1].startswith("0B"), stats
        docker.ok("pause", name)
        assert docker.inspect(name, "{{.State.Status}}") == "paused"
        docker.ok("unpause", name)
        docker.ok("stop", "-t", "10", name)
        assert docker.ok("wait", name) == "7\n"
        assert "got-term" in docker.ok("logs", name)
        docker.ok("start", name)
        second = int(docker.inspect(name, "{{.State.Pid}}"))
        assert second not in (0, first)
        docker.ok("restart", "-t", "10", name)
        assert int(docker.inspect(name, "{{.State.Pid}}")) not in (0, second)
        docker.ok("kill", name)
        assert docker.ok("wait", name) == "137\n"
    finally:
        docker.run("rm", "-f", name, timeout=60)


def test_run_interactive_through_a_terminal_and_with_init(
    stack: Stack, docker: DockerClient
) -> None:
    script = "if test -t 0; then echo stdin-is-tty; fi; read line; echo got:$line"
    with docker.terminal("run", "-it", "--rm", *NO_NETWORK, stack.image, "sh", "-c", script) as tty:
        tty.expect("stdin-is-tty")
        tty.type("hello\r")
        tty.expect("got:hello")
        assert tty.wait() == 0
    processes = run(docker, "--rm", "--init", stack.image, "ps")
    assert re.search(r"^\s*1\s+\S+\s+\S*docker-init\b", processes, re.MULTILINE), processes


# --- restarts -------------------------------------------------------------------------------


def test_images_and_containers_survive_restarts_of_both_daemons(registry, busybox_pushed) -> None:
    """The image store is pycontainerd's: dockerd restarts (live restore) and pycontainerd
    restarts (kill -9) keep the images, and the running container with its output."""
    with running_stack(
        busybox_pushed.ref,
        registry.host,
        "--live-restore",
        programs=docker28(),
        config=IMAGE_STORE,
        storage_driver=SNAPSHOTTER,
    ) as stack:
        docker = stack.docker
        docker.ok("pull", stack.image)
        script = "while true; do echo tick; sleep 0.2; done"
        run(docker, "-d", "--name", "survivor", stack.image, "sh", "-c", script)
        pid = docker.inspect("survivor", "{{.State.Pid}}")
        stack.dockerd.restart("--live-restore")
        assert docker.inspect("survivor", "{{.State.Pid}} {{.State.Status}}") == f"{pid} running"
        before_kill = stack.dockerd.log_size()
        stack.daemon.kill9()
        stack.daemon.start()
        stack.dockerd.wait_for_log(EVENTS_RESUMED, since=before_kill)
        assert stack.image in docker.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
        assert docker.ok("exec", "survivor", "echo", "reconnected") == "reconnected\n"
        ticks = docker.ok("logs", "survivor").count("tick")
        wait_for(lambda: docker.ok("logs", "survivor").count("tick") > ticks + 2, "more output", 20)
        assert run(docker, "--rm", stack.image, "echo", "new") == "new\n"
        docker.ok("stop", "-t", "1", "survivor")
        assert docker.inspect("survivor", "{{.State.ExitCode}}") == "137"
        docker.ok("rm", "survivor")
        errors = stack.unexpected_errors(allowed=CONTAINERD_DOWN_ERRORS)
        assert not errors, "dockerd logged errors:\n" + "\n".join(errors)


# --- build --------------------------------------------------------------------------------


def test_build_a_dockerfile_with_buildkit_inside_dockerd(
    stack: Stack, docker: DockerClient, ctr: Ctr, unique, tmp_path: Path
) -> None:
    (tmp_path / "greeting.txt").write_text("from the context\n")
    (tmp_path / "Dockerfile").write_text(
        f"FROM {stack.image}\n"
        "RUN echo built-by-run > /built.txt && mkdir /app\n"
        "COPY greeting.txt /app/greeting.txt\n"
        'CMD ["sh", "-c", "cat /built.txt /app/greeting.txt"]\n'
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


def test_multi_stage_build_copies_between_stages(
    stack: Stack, docker: DockerClient, unique, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {stack.image} AS first\n"
        "RUN echo from-the-first-stage > /made.txt\n"
        f"FROM {stack.image}\n"
        "COPY --from=first /made.txt /copied.txt\n"
        'CMD ["cat", "/copied.txt"]\n'
    )
    tag = f"{unique('staged')}:v1"
    result = docker.run("build", "--network=none", "--progress=plain", "-t", tag, str(tmp_path))
    assert result.returncode == 0, result.stderr.decode()
    assert run(docker, "--rm", tag) == "from-the-first-stage\n"
    docker.ok("rmi", tag)


# --- a container's filesystem ----------------------------------------------------------------


def test_diff_cp_commit_and_push(
    stack: Stack, docker: DockerClient, ctr: Ctr, unique, registry, tmp_path: Path
) -> None:
    """Changes in a container's snapshot: listed, copied out and in, committed, pushed."""
    name = unique("fs")
    run(docker, "-d", "--name", name, stack.image, "sh", "-c", "echo made > /made; sleep 3600")
    try:
        wait_for(lambda: "A /made" in docker.ok("diff", name), "the container's change", 20)
        docker.ok("cp", f"{name}:/made", str(tmp_path / "made"))
        assert (tmp_path / "made").read_text() == "made\n"
        (tmp_path / "given").write_text("given\n")
        docker.ok("cp", str(tmp_path / "given"), f"{name}:/given")
        assert docker.ok("exec", name, "cat", "/given") == "given\n"
        committed = registry.ref(f"test/{unique('committed')}", "v1")
        docker.ok("commit", name, committed)
    finally:
        docker.run("rm", "-f", name, timeout=60)
    assert committed in image_names(ctr)
    assert run(docker, "--rm", committed, "cat", "/made", "/given") == "made\ngiven\n"
    docker.ok("push", committed)
    docker.ok("rmi", committed)
    assert committed not in image_names(ctr)
    # What the registry got is the committed image, pulled back through pycontainerd.
    docker.ok("pull", committed)
    assert run(docker, "--rm", committed, "cat", "/made") == "made\n"
    docker.ok("rmi", committed)


def test_export_and_import(stack: Stack, docker: DockerClient, ctr: Ctr, unique) -> None:
    name = unique("exported")
    run(docker, "--name", name, stack.image, "sh", "-c", "echo kept > /kept")
    archive = stack.dockerd.base / f"{name}.tar"
    try:
        docker.ok("export", "-o", str(archive), name)
    finally:
        docker.run("rm", "-f", name, timeout=60)
    tag = f"{unique('imported')}:v1"
    docker.ok("import", str(archive), tag)
    archive.unlink()
    assert f"docker.io/library/{tag}" in image_names(ctr)
    assert run(docker, "--rm", tag, "cat", "/kept") == "kept\n"
    docker.ok("rmi", tag)


# --- networks, in a namespace of the test's own ---------------------------------------------------


#: Any port will do: it is one of dockerd's own namespace.
PUBLISHED_PORT = 18080


def host_links() -> set[str]:
    """The names of the host's network interfaces."""
    listed = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    return {line.split(":")[1].strip().split("@")[0] for line in listed.stdout.splitlines()}


@pytest.fixture(scope="module")
def host_interfaces() -> set[str]:
    """The host's interfaces before the namespaced dockerd started."""
    return host_links()


@pytest.fixture(scope="module")
def bridged(registry, busybox_pushed, host_interfaces: set[str]) -> Iterator[Stack]:
    """A second pycontainerd and dockerd 28, dockerd in a network namespace with its bridge.

    pycontainerd stays in the host's namespace: the containers' namespaces are
    dockerd's, handed over in the OCI spec.
    """
    with NetNamespace() as netns:
        netns.relay(int(registry.host.rsplit(":", 1)[1]))
        with running_stack(
            busybox_pushed.ref,
            registry.host,
            programs=docker28(),
            config=IMAGE_STORE,
            storage_driver=SNAPSHOTTER,
            netns=netns,
        ) as running:
            yield running
    assert host_links() <= host_interfaces, "dockerd made an interface in the host's namespace"


@pytest.fixture
def bridged_docker(bridged: Stack) -> Iterator[DockerClient]:
    yield from checked_client(bridged)


def test_a_container_on_the_default_bridge_has_an_address(
    bridged: Stack, bridged_docker: DockerClient, host_interfaces: set[str]
) -> None:
    shown = bridged_docker.ok("run", "--rm", bridged.image, "busybox", "ip", "-4", "addr")
    assert "eth0" in shown and "inet 172.17." in shown, shown
    # docker0 and the container's veth are in dockerd's namespace, not the host's.
    assert host_links() <= host_interfaces


def test_two_containers_on_a_user_network_reach_each_other_by_name(
    bridged: Stack, bridged_docker: DockerClient, unique
) -> None:
    docker = bridged_docker
    network = unique("net")
    server = unique("server")
    docker.ok("network", "create", network)
    try:
        docker.ok(
            "run", "-d", "--name", server, "--network", network, "--hostname", "served",
            bridged.image, "busybox", "httpd", "-f", "-p", "8080", "-h", "/etc",
        )  # fmt: skip
        url = f"http://{server}:8080/hostname"
        fetch = ("run", "--rm", "--network", network, bridged.image, "busybox", "wget", "-qO-", url)
        wait_for(lambda: docker.run(*fetch).returncode == 0, "the server to answer", 20)
        assert docker.ok(*fetch) == "served\n"
    finally:
        docker.run("rm", "-f", server, timeout=60)
        docker.run("network", "rm", network, timeout=60)


def test_a_published_port_answers_in_dockerds_namespace(
    bridged: Stack, bridged_docker: DockerClient, unique
) -> None:
    """``-p``: dockerd's NAT rules (in its namespace) lead its loopback port to the container."""
    docker = bridged_docker
    server = unique("published")
    docker.ok(
        "run", "-d", "--name", server, "--hostname", "published", "-p", f"{PUBLISHED_PORT}:8080",
        bridged.image, "busybox", "httpd", "-f", "-p", "8080", "-h", "/etc",
    )  # fmt: skip
    netns = bridged.dockerd.netns
    assert netns is not None
    try:
        url = f"http://127.0.0.1:{PUBLISHED_PORT}/hostname"

        def answered() -> bool:
            return netns.run("busybox", "wget", "-qO-", url).stdout == b"published\n"

        wait_for(answered, "the published port to answer", 20)
    finally:
        docker.run("rm", "-f", server, timeout=60)


def test_build_steps_run_on_the_default_bridge(
    bridged: Stack, bridged_docker: DockerClient, unique, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {bridged.image}\nRUN busybox ip -4 addr show eth0 > /addr.txt\n"
        'CMD ["cat", "/addr.txt"]\n'
    )
    tag = f"{unique('bridged')}:v1"
    result = bridged_docker.run("build", "--progress=plain", "-t", tag, str(tmp_path))
    assert result.returncode == 0, result.stderr.decode()
    assert "inet " in bridged_docker.ok("run", "--rm", "--network=none", tag)
    bridged_docker.ok("rmi", tag)

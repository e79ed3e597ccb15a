"""nerdctl 2.x (a real client on containerd 2's client library) driven against pycontainerd.

Everything runs inside a network namespace of the test (see
tests/support/nerdctl.py): the daemon, its shims and nerdctl's CNI hook, so
bridges, veths, addresses and iptables rules exist only there. pycontainerd
reports containerd 1.x, so nerdctl pulls and pushes client-side; its tag, save
and load go through containerd 2's Transfer service.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.images import PushedImage, write_oci_archive
from tests.support.nerdctl import NerdctlStack, nerdctl_stack
from tests.support.pty import PtySession
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(registry, busybox_pushed) -> Iterator[NerdctlStack]:  # type: ignore[no-untyped-def]
    before = _host_network()
    with nerdctl_stack(relay_ports=(registry.port,)) as running:
        running.nerdctl.ok("pull", "-q", busybox_pushed.ref)
        yield running
    after = _host_network()
    assert after == before, "the host's network namespace changed"


@pytest.fixture
def image(stack: NerdctlStack, busybox_pushed) -> str:  # type: ignore[no-untyped-def]
    return busybox_pushed.ref


def _host_network() -> tuple[str, str, str]:
    """The host namespace's interface names, routes and CNI/nerdctl firewall chains."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    names = "\n".join(sorted(line.split(":")[1].strip() for line in links.splitlines()))
    chains = "\n".join(
        sorted(line for line in rules.splitlines() if re.search(r"CNI|NERDCTL", line))
    )
    return names, routes, chains


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _json_rows(text: str) -> list[dict]:
    """nerdctl's ``--format json``: one array, or one object a line."""
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_pull_and_images(stack: NerdctlStack, image: str) -> None:
    listed = stack.nerdctl.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert image in listed.split()
    inspected = json.loads(stack.nerdctl.ok("image", "inspect", image))
    assert inspected[0]["RepoTags"] == [image]


def test_run_rm_with_env_host_dir_and_named_volume(
    stack: NerdctlStack, image: str, tmp_path: Path
) -> None:
    n = stack.nerdctl
    (tmp_path / "from-host").write_text("host text\n")
    volume = _name("vol")
    out = n.ok(
        "run", "--rm", "-e", "GREETING=hello", "-v", f"{tmp_path}:/host", "-v", f"{volume}:/data",
        image, "sh", "-c", "echo $GREETING; cat /host/from-host; echo kept > /data/f; "
        "echo made-inside > /host/from-container",
    )  # fmt: skip
    assert out.splitlines() == ["hello", "host text"]
    assert (tmp_path / "from-container").read_text() == "made-inside\n"
    assert volume in n.ok("volume", "ls", "-q").split()
    assert n.ok("run", "--rm", "-v", f"{volume}:/data", image, "cat", "/data/f") == "kept\n"
    assert n.ok("ps", "-aq") == ""  # --rm removed both containers
    n.ok("volume", "rm", volume)


def test_detached_lifecycle(stack: NerdctlStack, image: str, tmp_path: Path) -> None:
    n = stack.nerdctl
    name = _name("life")
    n.ok("run", "-d", "--name", name, image, "sh", "-c", "echo started; exec sleep 1000")
    assert name in n.ok("ps", "--format", "{{.Names}}").split()
    assert n.ok("exec", name, "echo", "in-exec") == "in-exec\n"
    wait_for(lambda: "started" in n.ok("logs", name), "the container's log", timeout=20)

    state = json.loads(n.ok("inspect", name))[0]
    assert (state["Name"], state["State"]["Status"]) == (name, "running")
    top = n.ok("top", name)
    assert "sleep 1000" in top
    stats = n.ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", name)
    assert stats.split() == [name, "1"]

    n.ok("pause", name)
    assert json.loads(n.ok("inspect", name))[0]["State"]["Status"] == "paused"
    n.ok("unpause", name)
    assert json.loads(n.ok("inspect", name))[0]["State"]["Status"] == "running"

    n.ok("stop", "-t", "1", name)
    assert json.loads(n.ok("inspect", name))[0]["State"]["Status"] == "exited"
    n.ok("start", name)
    assert json.loads(n.ok("inspect", name))[0]["State"]["Status"] == "running"
    pid_before = json.loads(n.ok("inspect", name))[0]["State"]["Pid"]
    n.ok("restart", "-t", "1", name)
    restarted = json.loads(n.ok("inspect", name))[0]["State"]
    assert restarted["Status"] == "running" and restarted["Pid"] != pid_before
    wait_for(lambda: n.ok("logs", name).count("started") >= 3, "logs of 3 starts", timeout=20)

    n.ok("rm", "-f", name)
    assert name not in n.ok("ps", "-a", "--format", "{{.Names}}").split()


def test_detached_with_a_terminal_logs_the_terminal(stack: NerdctlStack, image: str) -> None:
    """`run -dt`: the shim copies the pty's output into nerdctl's logging binary."""
    n = stack.nerdctl
    name = _name("tty")
    n.ok("run", "-dt", "--name", name, image, "sh", "-c", "tty; echo on-a-tty; exec sleep 1000")
    try:
        wait_for(lambda: "on-a-tty" in n.ok("logs", name), "the terminal's log", timeout=20)
        assert re.search(r"/dev/pts/\d+", n.ok("logs", name))
    finally:
        n.run("rm", "-f", name)


def test_cp_and_commit(stack: NerdctlStack, image: str, registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    n = stack.nerdctl
    name = _name("cp")
    n.ok("run", "-d", "--name", name, image, "sleep", "1000")
    (tmp_path / "in.txt").write_text("copied in\n")
    n.ok("cp", str(tmp_path / "in.txt"), f"{name}:/tmp/in.txt")
    assert n.ok("exec", name, "cat", "/tmp/in.txt") == "copied in\n"
    n.ok("exec", name, "sh", "-c", "echo committed > /marker")
    n.ok("cp", f"{name}:/marker", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "committed\n"

    committed = f"{registry.host}/nerdctl/committed:{uuid.uuid4().hex[:6]}"
    n.ok("commit", name, committed)
    n.ok("rm", "-f", name)
    assert n.ok("run", "--rm", committed, "cat", "/marker") == "committed\n"

    # push to the test registry, remove it here, pull it back
    n.ok("push", committed)
    n.ok("rmi", committed)
    assert committed not in n.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    n.ok("pull", "-q", committed)
    assert n.ok("run", "--rm", committed, "cat", "/marker") == "committed\n"
    n.ok("rmi", committed)


def test_tag(stack: NerdctlStack, image: str) -> None:
    n = stack.nerdctl
    tagged = f"{image.rsplit(':', 1)[0]}:tagged"
    tag = n.run("tag", image, tagged)
    assert tag.returncode == 0, tag.stderr.decode()
    assert tagged in n.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    n.ok("rmi", tagged)


def test_save(stack: NerdctlStack, image: str, tmp_path: Path) -> None:
    archive = tmp_path / "saved.tar"
    save = stack.nerdctl.run("save", "-o", str(archive), image)
    assert save.returncode == 0, save.stderr.decode()
    with tarfile.open(archive) as tar:
        assert "index.json" in tar.getnames()


def test_load(stack: NerdctlStack, busybox_pushed: PushedImage, tmp_path: Path) -> None:
    name = f"docker.io/library/loaded-{uuid.uuid4().hex[:6]}:v1"
    archive = tmp_path / "image.tar"
    write_oci_archive(archive, busybox_pushed.image, name)
    load = stack.nerdctl.run("load", "-i", str(archive))
    assert load.returncode == 0, load.stderr.decode()
    assert stack.nerdctl.ok("run", "--rm", name, "echo", "loaded") == "loaded\n"


def test_run_it_through_a_terminal(stack: NerdctlStack, image: str) -> None:
    n = stack.nerdctl
    with PtySession(n.argv("run", "-it", "--rm", image, "sh"), env=n.env) as session:
        session.expect(r"[#$] ")
        session.type("echo hi-$((1+1)); tty\r")
        session.expect(r"\bhi-2\b")
        session.expect(r"/dev/pts/\d+")
        session.type("exit 3\r")
        assert session.wait(timeout=60) == 3


def test_two_containers_on_a_bridge_network(stack: NerdctlStack, image: str) -> None:
    n = stack.nerdctl
    network = _name("net")
    n.ok("network", "create", network)
    assert network in n.ok("network", "ls", "--format", "{{.Name}}").split()
    server = _name("srv")
    n.ok("run", "-d", "--name", server, "--net", network, image,
         "nc", "-ll", "-p", "8080", "-e", "echo", "pong")  # fmt: skip
    try:
        reply = n.ok("run", "--rm", "--net", network, image,
                     "sh", "-c", f"nc -w 5 {server} 8080 </dev/null")  # fmt: skip
        assert reply == "pong\n"
        address = json.loads(n.ok("inspect", server))[0]["NetworkSettings"]["Networks"]
        assert address, "the server has an address on the network"
    finally:
        n.run("rm", "-f", server)
        n.run("network", "rm", network)


def test_port_mapping_reached_inside_the_test_namespace(stack: NerdctlStack, image: str) -> None:
    n = stack.nerdctl
    name = _name("port")
    n.ok("run", "-d", "--name", name, "-p", "127.0.0.1:18080:8080", image,
         "nc", "-ll", "-p", "8080", "-e", "echo", "mapped")  # fmt: skip
    try:
        assert "127.0.0.1:18080->8080/tcp" in n.ok("port", name) or "18080" in n.ok("ps")

        def answered() -> bool:
            reply = stack.inside("busybox", "nc", "-w", "3", "127.0.0.1", "18080", timeout=20)
            return reply.stdout == b"mapped\n"

        wait_for(answered, "the mapped port to answer", timeout=20)
    finally:
        n.run("rm", "-f", name)


COMPOSE = """\
services:
  web:
    image: {image}
    command: ["nc", "-ll", "-p", "8080", "-e", "echo", "from-web"]
  client:
    image: {image}
    depends_on: [web]
    command: ["sh", "-c", "until nc -w 2 web 8080 </dev/null; do sleep 0.2; done; exec sleep 1000"]
"""


def test_compose_up_ps_logs_down(stack: NerdctlStack, image: str, tmp_path: Path) -> None:
    n = stack.nerdctl
    compose = tmp_path / "compose.yaml"
    compose.write_text(COMPOSE.format(image=image))
    project = _name("proj")
    base = ("compose", "-f", str(compose), "-p", project)
    try:
        n.ok(*base, "up", "-d")
        assert sorted(
            row["Service"] for row in _json_rows(n.ok(*base, "ps", "--format", "json"))
        ) == [
            "client",
            "web",
        ]
        wait_for(
            lambda: "from-web" in n.ok(*base, "logs", "client"),
            "the client to reach the web service",
            timeout=30,
        )
    finally:
        n.run(*base, "down", timeout=180)
    assert not re.search(project, n.ok("ps", "-a", "--format", "{{.Names}}"))

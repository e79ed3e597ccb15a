"""The CRI streaming server end to end with crictl: exec (tty and stdin), attach,
port-forward, and what bad tokens and bad requests get.

crictl runs inside the daemon's network namespace (tests/support/cri.py): the
streaming server listens on that namespace's loopback.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.cri import CRIEnv, cri_env
from tests.support.pty import PtySession
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def env(registry, busybox_pushed):
    with cri_env(registry) as running:
        running.crictl.ok("pull", busybox_pushed.ref)
        yield running


@pytest.fixture(scope="module")
def pod(env: CRIEnv) -> tuple[str, str]:
    config = str(env.pod_config("streams"))
    return env.crictl.ok("runp", config).strip(), config


def start(env: CRIEnv, pod: tuple[str, str], name: str, image: str, cmd: list[str], **kw) -> str:
    config = str(env.container_config(name, image, cmd, **kw))
    container = env.crictl.ok("create", pod[0], config, pod[1]).strip()
    env.crictl.ok("start", container)
    return container


@pytest.fixture(scope="module")
def sleeper(env, pod, busybox_pushed) -> str:
    return start(env, pod, "sleeper", busybox_pushed.ref, ["sleep", "100000"])


def crictl_in_netns(env: CRIEnv, *args: str, stdin: bytes | None = None, timeout: float = 60):
    return subprocess.run(
        env.netns.argv([*env.crictl.argv, *args]),
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )


TRANSPORTS = pytest.mark.parametrize("transport", ["spdy", "websocket"])


@TRANSPORTS
def test_exec_streams_stdout_stderr_and_the_exit_code(env, sleeper, transport):
    out = crictl_in_netns(
        env, "exec", "-r", transport, sleeper, "sh", "-c", "echo out; echo err >&2; exit 3"
    )
    # crictl 1.37 exits 1 and names the code it read from the error stream's Status.
    assert out.returncode == 1, out
    assert b"command terminated with exit code 3" in out.stderr
    assert out.stdout == b"out\n"
    assert out.stderr.startswith(b"err\n")
    ok = crictl_in_netns(env, "exec", "-r", transport, sleeper, "true")
    assert ok.returncode == 0, ok


@TRANSPORTS
def test_exec_with_piped_stdin(env, sleeper, transport):
    data = b"".join(b"line %d\n" % i for i in range(5000))
    out = crictl_in_netns(env, "exec", "-r", transport, "-i", sleeper, "cat", stdin=data)
    assert out.returncode == 0, out
    assert out.stdout == data
    # The process sees the end of its input when crictl's stdin ends.
    out = crictl_in_netns(env, "exec", "-r", transport, "-i", sleeper, "wc", "-l", stdin=data)
    assert out.stdout.strip() == b"5000", out


@TRANSPORTS
def test_exec_tty_through_a_pty(env, sleeper, transport):
    argv = env.netns.argv([*env.crictl.argv, "exec", "-r", transport, "-it", sleeper, "sh"])
    with PtySession(argv, rows=30, columns=100) as session:
        session.type("stty size; echo typed-$((6*7))\r")
        session.expect(r"30 100")
        session.expect("typed-42")
        session.resize(40, 120)
        session.type("sleep 0.5; stty size\r")
        session.expect(r"40 120")
        session.type("exit 5\r")
        assert session.wait() == 1
        session.expect("command terminated with exit code 5")


@TRANSPORTS
def test_attach_to_a_container_with_stdin_and_tty(env, pod, busybox_pushed, transport):
    shell = start(env, pod, "shell", busybox_pushed.ref, ["sh"], stdin=True, tty=True)
    argv = env.netns.argv([*env.crictl.argv, "attach", "-r", transport, "-it", shell])
    with PtySession(argv, rows=33, columns=90) as session:
        session.type("echo attached-$((2*3)); stty size\r")
        session.expect("attached-6")
        session.expect("33 90")
    # Leaving the attach leaves the container running.
    assert state_of(env, shell) == "CONTAINER_RUNNING"
    env.crictl.ok("rm", "-f", shell)


@TRANSPORTS
def test_attach_with_piped_stdin_once(env, pod, busybox_pushed, transport):
    cmd = ["sh", "-c", "while read l; do echo got-$l; done; echo bye"]
    reader = start(env, pod, "reader", busybox_pushed.ref, cmd, stdin=True, stdin_once=True)
    out = crictl_in_netns(env, "attach", "-r", transport, "-i", reader, stdin=b"a\nb\n")
    assert out.returncode == 0, out
    assert out.stdout == b"got-a\ngot-b\nbye\n"
    wait_for(lambda: state_of(env, reader) == "CONTAINER_EXITED", timeout=20)
    env.crictl.ok("rm", reader)


ECHO_CLIENT = """
import hashlib, socket, sys
data = bytes(range(256)) * 4096 * int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
while chunk := s.recv(65536):
    got += chunk
print(hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(), len(got))
"""


@TRANSPORTS
def test_port_forward_from_the_test_namespace_into_a_pod(env, pod, busybox_pushed, transport):
    name = "echo-" + transport
    server = start(env, pod, name, busybox_pushed.ref, ["nc", "-ll", "-p", "8080", "-e", "cat"])
    forward = subprocess.Popen(
        env.netns.argv([*env.crictl.argv, "port-forward", "-r", transport, pod[0], "18081:8080"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert forward.stdout is not None
        assert b"Forwarding from" in forward.stdout.readline()
        for megabytes in (1, 4):
            out = env.in_netns(sys.executable, "-c", ECHO_CLIENT, "18081", str(megabytes))
            assert out.stdout.split() == [b"True", str(megabytes * 1024 * 1024).encode()], out
    finally:
        forward.terminate()
        forward.wait(20)
    env.crictl.ok("rm", "-f", server)


@TRANSPORTS
def test_port_forward_to_a_closed_port_reports_on_the_error_stream(env, pod, transport):
    forward = subprocess.Popen(
        env.netns.argv([*env.crictl.argv, "port-forward", "-r", transport, pod[0], "18082:9"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert forward.stdout is not None
        assert b"Forwarding from" in forward.stdout.readline()
        out = env.in_netns(
            sys.executable, "-c", "import socket; socket.create_connection(('127.0.0.1', 18082))"
        )
        assert out.returncode == 0, out
        seen = b""
        while b"error forwarding port 9" not in seen:
            line = forward.stdout.readline()
            assert line, seen
            seen += line
    finally:
        forward.terminate()
        forward.wait(20)


HTTP_PROBE = """
import http.client, sys
url = sys.argv[1]
host, path = url.removeprefix("http://").split("/", 1)
for headers in (
    {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": sys.argv[2]},
):
    c = http.client.HTTPConnection(host, timeout=30)
    c.request("POST", "/" + path, headers=headers)
    r = c.getresponse()
    print(r.status, r.getheader("X-Stream-Protocol-Version"))
"""


def probe(env: CRIEnv, url: str, protocol: str) -> str:
    out = env.in_netns(sys.executable, "-c", HTTP_PROBE, url, protocol)
    assert out.returncode == 0, out
    return out.stdout.decode().strip()


def test_tokens_are_single_use_and_cannot_be_forged(env, sleeper):
    from tests.support.cri_client import CRIClient, cri

    assert env.daemon is not None
    with CRIClient(env.daemon.address) as client:
        request = cri.ExecRequest(container_id=sleeper, cmd=["true"], stdout=True)
        url = client.runtime.Exec(request, timeout=30).url
        # A subprotocol we do not speak: 403, and the token is gone with it.
        assert probe(env, url, "v9.channel.k8s.io") == "403 None"
        assert probe(env, url, "v4.channel.k8s.io").startswith("404")
        forged = url.rsplit("/", 1)[0] + "/AAAAAAAA"
        assert probe(env, forged, "v4.channel.k8s.io").startswith("404")
        # An exec token is no attach token.
        url = client.runtime.Exec(request, timeout=30).url
        assert probe(env, url.replace("/exec/", "/attach/"), "v4.channel.k8s.io").startswith("404")
        url = client.runtime.Exec(request, timeout=30).url
        assert probe(env, url, "v4.channel.k8s.io") == "101 v4.channel.k8s.io"


def state_of(env: CRIEnv, container: str) -> str:
    return env.crictl.json("inspect", container)["status"]["state"]


def test_a_client_that_hangs_up_takes_its_exec_down(env, sleeper):
    argv = env.netns.argv([*env.crictl.argv, "exec", "-it", sleeper, "sh"])
    with PtySession(argv) as session:
        session.type("echo $$ > /tmp/hangup.pid; echo up\r")
        session.expect("up")
    # crictl was killed with its session: the shell it ran goes too.
    wait_for(
        lambda: (
            env.crictl.run(
                "exec", "-s", sleeper, "sh", "-c", "kill -0 $(cat /tmp/hangup.pid)"
            ).returncode
            != 0
        ),
        timeout=30,
    )

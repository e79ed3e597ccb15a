"""The CRI streaming server end to end with crictl: exec (tty and stdin), attach,
port-forward, and what bad tokens and bad requests get.

crictl runs inside the daemon's network namespace (tests/support/cri.py): the
streaming server listens on that namespace's loopback.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.support.cri import CRIEnv, cri_env
from tests.support.pty import PtySession

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


def test_exec_streams_stdout_stderr_and_the_exit_code(env, sleeper):
    out = crictl_in_netns(env, "exec", sleeper, "sh", "-c", "echo out; echo err >&2; exit 3")
    # crictl 1.37 exits 1 and names the code it read from the error stream's Status.
    assert out.returncode == 1, out
    assert b"command terminated with exit code 3" in out.stderr
    assert out.stdout == b"out\n"
    assert out.stderr.startswith(b"err\n")
    ok = crictl_in_netns(env, "exec", sleeper, "true")
    assert ok.returncode == 0, ok


def test_exec_with_piped_stdin(env, sleeper):
    data = b"".join(b"line %d\n" % i for i in range(5000))
    out = crictl_in_netns(env, "exec", "-i", sleeper, "cat", stdin=data)
    assert out.returncode == 0, out
    assert out.stdout == data
    # The process sees the end of its input when crictl's stdin ends.
    out = crictl_in_netns(env, "exec", "-i", sleeper, "wc", "-l", stdin=data)
    assert out.stdout.strip() == b"5000", out


def test_exec_tty_through_a_pty(env, sleeper):
    argv = env.netns.argv([*env.crictl.argv, "exec", "-it", sleeper, "sh"])
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

"""`pyctr run --rm -t` at a real (pseudo-)terminal: raw mode, Ctrl-C, exit status, resize."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ctr_env import CtrRunEnv
from tests.support.daemon import DaemonProcess
from tests.support.pty import PtySession

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAP_INT = 'trap "echo got-int; exit 7" INT; echo ready; while :; do sleep 1; done'


@pytest.fixture
def env(daemon: DaemonProcess) -> Iterator[CtrRunEnv]:
    with CtrRunEnv(daemon) as ctr_env:
        yield ctr_env


def pyctr_argv(env: CtrRunEnv, *args: str) -> list[str]:
    return [sys.executable, "-m", "ctr.main", "-a", str(env.daemon.address), "-n", env.namespace, *args]  # fmt: skip


def pyctr_env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if "CONTAINERD_" not in k}
    return {**clean, "PYTHONPATH": str(REPO_ROOT)}


@pytest.fixture
def image(env: CtrRunEnv, busybox_pushed) -> str:  # type: ignore[no-untyped-def]
    pulled = subprocess.run(
        pyctr_argv(env, "images", "pull", "--plain-http", busybox_pushed.ref),
        capture_output=True,
        env=pyctr_env(),
        timeout=60,
    )
    assert pulled.returncode == 0, pulled.stderr
    return busybox_pushed.ref


def test_ctrl_c_reaches_the_container_and_the_exit_status_comes_back(env: CtrRunEnv, image: str):
    argv = pyctr_argv(env, "run", "--rm", "-t", image, "tty1", "sh", "-c", TRAP_INT)
    with PtySession(argv, env=pyctr_env()) as session:
        session.expect("ready")
        session.type("\x03")  # Ctrl-C, a byte in raw mode
        session.expect("got-int")
        assert session.wait() == 7
    assert env.containers() == []


def test_interactive_shell_sees_a_terminal_of_our_size(env: CtrRunEnv, image: str):
    argv = pyctr_argv(env, "run", "--rm", "-t", image, "tty2", "sh")
    with PtySession(argv, rows=30, columns=100, env=pyctr_env()) as session:
        session.type("stty size; tty; echo typed-$((6*7))\r")
        session.expect(r"30 100")
        session.expect(r"/dev/pts/\d+")
        session.expect("typed-42")
        session.resize(40, 120)
        session.type("sleep 0.3; stty size\r")
        session.expect(r"40 120")
        session.type("exit 3\r")
        assert session.wait() == 3


def test_sigterm_is_forwarded_without_a_terminal(env: CtrRunEnv, image: str):
    script = 'trap "echo got-term; exit 9" TERM; echo ready; while :; do sleep 1; done'
    process = subprocess.Popen(
        pyctr_argv(env, "run", "--rm", image, "sig1", "sh", "-c", script),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=pyctr_env(),
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
        process.terminate()
        assert process.wait(30) == 9
        assert process.stdout.read() == b"got-term\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

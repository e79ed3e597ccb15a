"""`ctr run -t ... sh` at a pseudo-terminal: typing, window size and resize, exit code.

The test holds the pty's master side, like a terminal emulator: ctr runs on the
slave side as its controlling terminal, puts it in raw mode and relays it to the
container's console (created by the runtime and handed to our shim). Resizing the
master sends ctr SIGWINCH, which it turns into a ResizePty call.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest

from tests.support.ctr_env import CtrRunEnv, ctr_run_env
from tests.support.daemon import DaemonProcess
from tests.support.pty import PtySession
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

#: A line end as the test sees it: the container's terminal writes CR LF, and ctr leaves
#: output post-processing on in its own terminal (containerd/console's SetRaw keeps
#: OPOST), so that one adds another CR.
EOL = r"\r+\n"
ENV = {**os.environ, "CONTAINERD_ADDRESS": "", "TERM": "xterm"}


@pytest.fixture
def env(daemon: DaemonProcess, busybox_pushed) -> Iterator[CtrRunEnv]:  # type: ignore[no-untyped-def]
    with ctr_run_env(daemon, busybox_pushed.ref) as run_env:
        yield run_env


def line(text: str) -> str:
    """A pattern for `text` printed as a whole line (leaving its line end to match again)."""
    return rf"{EOL}{re.escape(text)}(?={EOL})"


def size_reaches_container(session: PtySession, rows: int, columns: int) -> None:
    """Ask the container's terminal its size until it is `rows` x `columns`.

    ctr handles SIGWINCH asynchronously: a command typed right after a resize may
    run before the ResizePty call lands, so a few asks are allowed.
    """
    seen = []
    for _attempt in range(20):
        session.type("busybox stty size\r")
        answer = session.expect(rf"{EOL}(\d+) (\d+)(?={EOL})")
        seen.append(f"{answer[1]} {answer[2]}")
        if (int(answer[1]), int(answer[2])) == (rows, columns):
            return
        time.sleep(0.1)
    raise AssertionError(f"the container's terminal never became {rows}x{columns}: {seen}")


def _ctr_argv(env: CtrRunEnv, *args: str) -> list[str]:
    return [env.ctr.binary, "-a", str(env.daemon.address), "-n", env.namespace, *args]


def _interactive_sh(env: CtrRunEnv, image: str, name: str, *flags: str) -> list[str]:
    return _ctr_argv(env, *env.run_args("-t", "--rm", *flags, image, name, "sh"))


def _prompt(session: PtySession) -> None:
    session.expect(r"[#$] ")


def test_typed_commands_are_echoed_and_run(env: CtrRunEnv, busybox_pushed) -> None:
    with PtySession(_interactive_sh(env, busybox_pushed.ref, "tty1"), env=ENV) as session:
        _prompt(session)
        session.type("echo hi-$((1+1))\r")
        session.expect(r"echo hi-\$\(\(1\+1\)\)")  # the container's terminal echoes typing
        session.expect(line("hi-2"))
        _prompt(session)
        session.type("tty; busybox stty -a | head -n 1\r")
        session.expect(r"/dev/(console|pts/\d+)")
        session.type("exit 5\r")
        assert session.wait() == 5
    env.assert_clean("tty1")
    assert env.containers() == []


def test_window_size_and_resize_reach_the_container(env: CtrRunEnv, busybox_pushed) -> None:
    argv = _interactive_sh(env, busybox_pushed.ref, "tty2")
    with PtySession(argv, rows=33, columns=101, env=ENV) as session:
        _prompt(session)
        session.type("busybox stty size\r")
        session.expect(line("33 101"))
        _prompt(session)

        # The window changes while the container runs: SIGWINCH -> ctr -> ResizePty.
        session.resize(41, 127)
        size_reaches_container(session, 41, 127)
        session.type("exit\r")
        assert session.wait() == 0
    env.assert_clean("tty2")


def test_exec_with_a_terminal_into_a_running_task(env: CtrRunEnv, busybox_pushed) -> None:
    started = env.run("-d", busybox_pushed.ref, "host", "sleep", "1000")
    assert started.returncode == 0, started.stderr
    argv = _ctr_argv(
        env, "tasks", "exec", "-t", "--fifo-dir", str(env.fifo_dir), "--exec-id", "shell",
        "host", "sh",
    )  # fmt: skip
    with PtySession(argv, rows=20, columns=70, env=ENV) as session:
        _prompt(session)
        session.type("busybox stty size; echo in-$((6*7))\r")
        session.expect(line("20 70"))
        session.expect(line("in-42"))
        session.resize(25, 90)
        size_reaches_container(session, 25, 90)
        session.type("exit 7\r")
        assert session.wait() == 7
    assert env.tasks()["host"][1] == "RUNNING"
    env.ctr.ok("tasks", "kill", "-s", "SIGKILL", "host")
    wait_for(lambda: env.tasks()["host"][1] == "STOPPED", what="the task to stop")
    env.ctr.ok("tasks", "rm", "host")
    env.ctr.ok("containers", "rm", "host")
    env.assert_clean("host")

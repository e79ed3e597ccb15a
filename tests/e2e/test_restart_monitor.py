"""The restart monitor through the socket: Debian's ctr labels containers, the daemon
restarts their tasks (containerd's io.containerd.monitor.container.v1.restart).

The daemon's monitor runs every 100 ms here. "Not restarted" is checked after the
monitor has logged two further rounds, never after a sleep.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd.restart.monitor import ROUND_DONE
from tests.support.ctr_env import CtrRunEnv, ctr_run_env
from tests.support.daemon import Ctr, DaemonProcess
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

STATUS = "containerd.io/restart.status"
POLICY = "containerd.io/restart.policy"
COUNT = "containerd.io/restart.count"
STOPPED = "containerd.io/restart.explicitly-stopped"
LOG_URI = "containerd.io/restart.loguri"
MONITOR_CONFIG = '[plugins."io.containerd.monitor.container.v1.restart"]\n  interval = "100ms"\n'


@pytest.fixture
def monitored() -> Iterator[DaemonProcess]:
    proc = DaemonProcess(extra_config=MONITOR_CONFIG)
    try:
        yield proc.start()
    finally:
        proc.cleanup()


@pytest.fixture
def env(monitored: DaemonProcess, busybox_pushed) -> Iterator[CtrRunEnv]:  # type: ignore[no-untyped-def]
    with ctr_run_env(monitored, busybox_pushed.ref) as run_env:
        yield run_env


def _run_detached(env: CtrRunEnv, ref: str, name: str, labels: dict[str, str], *args: str) -> None:
    """``ctr run -d``, then the labels, as containerd's tests set them: a monitor round
    between ctr's task create and start would see a task not running, as containerd's
    monitor would, and restart it (or, for status stopped, delete it under ctr)."""
    env.ctr.ok(*env.run_args("-d", ref, name, *args))
    env.ctr.ok("containers", "label", name, *(f"{k}={v}" for k, v in labels.items()))


def _labels(env: CtrRunEnv, name: str) -> dict[str, str]:
    labels: dict[str, str] = json.loads(env.ctr.ok("containers", "info", name))["Labels"] or {}
    return labels


def _status(env: CtrRunEnv, name: str) -> tuple[int, str] | None:
    return env.tasks().get(name)


def _two_more_rounds(daemon: DaemonProcess) -> None:
    seen = daemon.log().count(ROUND_DONE)
    wait_for(lambda: daemon.log().count(ROUND_DONE) >= seen + 2, "two monitor rounds", 30)


def test_the_plugin_is_listed(env: CtrRunEnv) -> None:
    lines = env.ctr.ok("plugins", "ls").splitlines()
    assert any(line.split()[:2] == ["io.containerd.monitor.container.v1", "restart"] and
               line.split()[-1] == "ok" for line in lines), lines  # fmt: skip


def test_always_restarts_a_killed_task_until_explicitly_stopped(
    env: CtrRunEnv, busybox_pushed
) -> None:  # type: ignore[no-untyped-def]
    labels = {STATUS: "running", POLICY: "always"}
    _run_detached(env, busybox_pushed.ref, "web", labels, "sleep", "1000")
    first_pid, _ = env.tasks()["web"]
    env.ctr.ok("tasks", "kill", "-s", "SIGKILL", "web")

    def restarted() -> bool:
        found = _status(env, "web")
        return found is not None and found[1] == "RUNNING" and found[0] != first_pid

    wait_for(restarted, "the killed task to be restarted", 30)
    assert _labels(env, "web")[COUNT] == "1"

    env.ctr.ok("containers", "label", "web", f"{STOPPED}=true")
    env.ctr.ok("tasks", "kill", "-s", "SIGKILL", "web")
    wait_for(lambda: (_status(env, "web") or (0, ""))[1] == "STOPPED", "the task to stop", 30)
    _two_more_rounds(env.daemon)
    assert _status(env, "web") is not None
    assert _status(env, "web")[1] == "STOPPED"  # type: ignore[index]
    assert _labels(env, "web")[COUNT] == "1"


def test_on_failure_restarts_n_times_with_the_log_uri(
    env: CtrRunEnv, busybox_pushed, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    log_file = tmp_path / "out.log"
    labels = {STATUS: "running", POLICY: "on-failure:2", LOG_URI: f"file://{log_file}"}
    _run_detached(env, busybox_pushed.ref, "flaky", labels, "sh", "-c", "echo ran; exit 3")

    def gave_up() -> bool:
        found = _status(env, "flaky")
        return (
            _labels(env, "flaky").get(COUNT) == "2" and found is not None and found[1] == "STOPPED"
        )

    wait_for(gave_up, "two restarts, then a stopped task", 60)
    _two_more_rounds(env.daemon)
    assert _labels(env, "flaky")[COUNT] == "2"
    assert (_status(env, "flaky") or (0, ""))[1] == "STOPPED"
    # The restarts' output went to the log URI (the first run's to ctr's FIFOs).
    wait_for(lambda: log_file.exists() and log_file.read_text().count("ran") == 2, "the log", 10)


def test_on_failure_leaves_a_clean_exit_alone(env: CtrRunEnv, busybox_pushed) -> None:  # type: ignore[no-untyped-def]
    labels = {STATUS: "running", POLICY: "on-failure"}
    _run_detached(env, busybox_pushed.ref, "done", labels, "true")
    wait_for(lambda: (_status(env, "done") or (0, ""))[1] == "STOPPED", "the task to end", 30)
    _two_more_rounds(env.daemon)
    assert COUNT not in _labels(env, "done")


def test_status_stopped_ends_the_task(env: CtrRunEnv, busybox_pushed) -> None:  # type: ignore[no-untyped-def]
    _run_detached(env, busybox_pushed.ref, "idle", {STATUS: "stopped"}, "sleep", "1000")
    wait_for(lambda: "idle" not in env.tasks(), "the monitor to kill and delete the task", 30)
    assert "idle" in env.containers()


def test_after_a_daemon_restart_always_forgets_an_explicit_stop(
    env: CtrRunEnv, busybox_pushed
) -> None:  # type: ignore[no-untyped-def]
    """containerd's rule: ``unless-stopped`` remembers the explicit stop, ``always`` not."""
    for name, rule in (("always", "always"), ("kept", "unless-stopped")):
        labels = {STATUS: "running", POLICY: rule, STOPPED: "true"}
        _run_detached(env, busybox_pushed.ref, name, labels, "sleep", "1000")
        env.ctr.ok("tasks", "kill", "-s", "SIGKILL", name)
    for name in ("always", "kept"):
        wait_for(lambda n=name: (_status(env, n) or (0, ""))[1] == "STOPPED", "a stop", 30)  # type: ignore[misc]
    _two_more_rounds(env.daemon)
    assert (_status(env, "always") or (0, ""))[1] == "STOPPED"

    env.daemon.restart()
    wait_for(lambda: (_status(env, "always") or (0, ""))[1] == "RUNNING", "the restart", 30)
    assert _labels(env, "always")[STOPPED] == "false"
    _two_more_rounds(env.daemon)
    assert (_status(env, "kept") or (0, ""))[1] == "STOPPED"
    assert _labels(env, "kept")[STOPPED] == "true"


def _plugin_status(daemon: DaemonProcess) -> str:
    listing = Ctr(daemon.address).ok("plugins", "ls").splitlines()
    rows = [line.split() for line in listing]
    return next(r[-1] for r in rows if r[:2] == ["io.containerd.monitor.container.v1", "restart"])


@pytest.mark.parametrize(
    ("section", "interval", "logged"),
    [
        ("io.containerd.monitor.container.v1.restart", '"ten seconds"', None),
        ("io.containerd.monitor.container.v1.restart", '"1m30s"', "every 90s"),
        ("io.containerd.monitor.container.v1.restart", '"250ms"', "every 0.25s"),
        ("io.containerd.internal.v1.restart", '"2s"', "every 2s"),  # containerd 1.x's name
        ("io.containerd.monitor.container.v1.restart", '"0s"', "every 10s"),  # the default
    ],
)
def test_the_interval_setting(section: str, interval: str, logged: str | None) -> None:
    daemon = DaemonProcess(extra_config=f'[plugins."{section}"]\n  interval = {interval}\n')
    try:
        daemon.start()
        if logged is None:  # not a duration we read: the plugin fails, the daemon serves
            assert _plugin_status(daemon) == "error"
            assert "is not a duration" in daemon.log()
        else:
            assert _plugin_status(daemon) == "ok"
            assert f"restart monitor: checking {logged}" in daemon.log()
    finally:
        daemon.cleanup()


def test_a_paused_task_is_left_paused(env: CtrRunEnv, busybox_pushed) -> None:  # type: ignore[no-untyped-def]
    _run_detached(env, busybox_pushed.ref, "nap", {STATUS: "running"}, "sleep", "1000")
    pid, _ = env.tasks()["nap"]
    env.ctr.ok("tasks", "pause", "nap")
    _two_more_rounds(env.daemon)
    assert env.tasks()["nap"] == (pid, "PAUSED")
    assert COUNT not in _labels(env, "nap")
    env.ctr.ok("tasks", "resume", "nap")


def test_config_default_shows_the_interval() -> None:
    command = [sys.executable, "-m", "pycontainerd.cmd.daemon", "config", "default"]
    out = subprocess.run(command, capture_output=True, check=True).stdout
    section = tomllib.loads(out.decode())["plugins"]["io.containerd.monitor.container.v1.restart"]
    assert section == {"interval": "10s"}
